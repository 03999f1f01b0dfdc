"""`caffelite time --model NET`: Caffe's `caffe time` — mean forward/backward ms per layer."""
import json
import time

import click

from ..errors import ConfigError
from .train import split_list


def benchmark(net, iterations):
    """Caffe's time(): one warm-up forward+backward, then `iterations` passes timing each
    layer's forward (reshape + forward + loss, as Net.forward_from_to runs it) and backward
    (only where the net would run it, with its bottom_need_backward as propagate_down).
    Returns a dict of mean milliseconds."""
    initial_loss = net.forward_prefilled()
    net.backward_from_to()
    n = len(net.layers)
    forward, backward = [0.0] * n, [0.0] * n
    forward_total = backward_total = 0.0
    clock = time.perf_counter
    waits_before = data_wait_seconds(net)
    start = clock()
    for _ in range(iterations):
        pass_start = clock()
        for i in range(n):
            t = clock()
            net.forward_from_to(i, i)
            forward[i] += clock() - t
        middle = clock()
        forward_total += middle - pass_start
        for i in range(n - 1, -1, -1):
            t = clock()
            net.backward_from_to(i, i)  # a no-op for layers the net does not backpropagate
            backward[i] += clock() - t
        backward_total += clock() - middle
    total = clock() - start
    data_wait = data_wait_seconds(net) - waits_before
    ms = 1000.0 / iterations
    return {
        "initial_loss": initial_loss, "iterations": iterations,
        "layers": [{"name": layer.name, "type": layer.type, "forward_ms": f * ms,
                    "backward_ms": b * ms, "backward_runs": bool(need)}
                   for layer, f, b, need in zip(net.layers, forward, backward,
                                                net.layer_need_backward)],
        "forward_ms": forward_total * ms, "backward_ms": backward_total * ms,
        "forward_backward_ms": total * ms, "total_ms": total * 1000.0,
        "data_wait_ms": data_wait * ms, "data_wait_fraction": data_wait / total if total else 0.0,
    }


def data_wait_seconds(net):
    """Seconds the net's prefetching data layers have spent waiting for their next batch."""
    return sum(getattr(layer, "data_wait", 0.0) for layer in net.layers)


def report_lines(result):
    """The table as Caffe logs it: `conv1  forward: 0.52 ms.` ... `Total Time: ... ms.`"""
    width = max([10] + [len(layer["name"]) for layer in result["layers"]])
    lines = [f"Initial loss: {result['initial_loss']:g}",
             f"Testing for {result['iterations']} iterations.",
             f"Threads: {result['threads']}; compiled kernels: "
             f"{'on' if result['compiled_kernels'] else 'off'}.", "Average time per layer:"]
    for layer in result["layers"]:
        lines.append(f"{layer['name']:>{width}}   forward: {layer['forward_ms']:.4g} ms.")
        lines.append(f"{layer['name']:>{width}}  backward: {layer['backward_ms']:.4g} ms."
                     + ("" if layer["backward_runs"] else "  (no backward needed)"))
    if not any(layer["backward_runs"] for layer in result["layers"]):
        lines.append("No layer needs backward (no loss reaches a parameter); set "
                     "force_backward: true in the net to time a full backward.")
    lines += [f"Average Forward pass: {result['forward_ms']:.4g} ms.",
              f"Average Backward pass: {result['backward_ms']:.4g} ms.",
              f"Average Forward-Backward: {result['forward_backward_ms']:.4g} ms.",
              f"Average data wait: {result.get('data_wait_ms', 0.0):.4g} ms "
              f"({100 * result.get('data_wait_fraction', 0.0):.3g}% of the iteration).",
              f"Total Time: {result['total_ms']:.4g} ms."]
    return lines


@click.command(name="time")
@click.option("--model", required=True, metavar="NET",
              help="The net to time (.prototxt/.yaml/.json).")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Number of timed forward-backward passes.")
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              default="TRAIN", show_default=True, help="The net phase to build.")
@click.option("--level", type=int, default=0, help="The net state's level.")
@click.option("--stage", metavar="S1[,S2]", help="The net state's stages.")
@click.option("--json", "as_json", is_flag=True, help="Print the timings as JSON.")
def command(model, iterations, phase, level, stage, as_json):
    """Time the net's layers: one warm-up forward+backward, then the average forward and
    backward time of every layer and of the whole net over ITERATIONS passes."""
    from .. import runtime
    from ..formats.config import read_net_param, resolve_net_paths
    from ..net import Net
    from ..proto import caffelite_pb2 as pb

    try:
        net_param = resolve_net_paths(read_net_param(model), model)
    except ConfigError as exc:
        raise ConfigError(f"--model: {exc}") from None
    net = Net(net_param, phase=getattr(pb, phase.upper()), level=level,
              stages=tuple(split_list(stage)))
    result = benchmark(net, iterations)
    result.update(model=model, phase=phase.upper(), threads=runtime.num_threads(),
                  compiled_kernels=runtime.compiled_kernels())
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo("\n".join(report_lines(result)))
