#!/usr/bin/env python
"""Data-parallel training on one machine: `mpiexec -n 2` with one thread per rank against one
process with two threads, the same global batch, timed in alternating rounds.

    python scripts/bench_mpi.py                          # LeNet b64, CIFAR-10 quick b100
    python scripts/bench_mpi.py --nets lenet --rounds 5 --iters 40 --json
    CAFFELITE_NUM_THREADS=1 python scripts/bench_mpi.py --scaling   # docs/scaling.md's model

Each round starts one run of each side in turn (a fresh process or job each time, so neither
side keeps a warm cache the other lacks), trains `--warmup` iterations untimed, then times
`--iters` single iterations (`solver.step(1)`, SGD with momentum, a Data layer reading a
synthetic .npz; on two ranks each reads half of each global batch). Reported per side:
images/s from the median iteration, the iteration time's quartiles and, for MPI, the time
per iteration rank 0 spends in the gradient exchange (pack, allreduce, unpack; it includes
waiting for the slower rank) and the fused buffer's allreduce alone, after a barrier.
Needs mpi4py and an mpiexec (pip install "caffelite[mpi]").
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import NETS, net_spec  # noqa: E402  (the nets of scripts/bench.py)

BATCHES = {"lenet": 64, "cifar10_quick": 100}
RECORDS = 2048  # images in each synthetic training set


def dataset(name, directory):
    """A synthetic .npz with RECORDS images of the net's input size (uint8) and labels."""
    path = os.path.join(directory, f"{name}.npz")
    if not os.path.exists(path):
        channels, size, classes = NETS[name]
        rng = np.random.default_rng(0)
        np.savez(path, images=rng.integers(0, 256, (RECORDS, channels, size, size), np.uint8),
                 labels=rng.integers(0, classes, RECORDS))
    return path


def solver_param(name, batch, source):
    """SGD on the net with its Input layer turned into a Data layer reading `source`."""
    from caffelite.proto import caffelite_pb2 as pb

    net = net_spec(name, batch)
    data = net.layer[0]
    data.ClearField("input_param")
    data.type = "Data"
    data.data_param.source = source
    data.data_param.batch_size = batch
    data.transform_param.scale = 1 / 256
    param = pb.SolverParameter(base_lr=0.001, momentum=0.9, weight_decay=5e-4,
                               lr_policy="fixed", max_iter=1 << 30, display=0, random_seed=1,
                               snapshot_after_train=False)
    param.net_param.CopyFrom(net)
    return param


def worker(args):
    """Train under this process's world (mpiexec or not) and print rank 0's timings as JSON."""
    import caffelite

    solver = caffelite.get_solver(solver_param(args.net, args.batch, args.source),
                                  parallel=True)
    solver.step(args.warmup)
    exchange = next((cb for cb in solver.callbacks if hasattr(cb, "allreduce_seconds")), None)
    if exchange is not None:
        exchange.allreduce_seconds.clear()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    alone = []  # the fused buffer's allreduce after a barrier: no waiting for a slower rank
    if exchange is not None:
        for _ in range(args.iters):
            exchange.world.comm.Barrier()
            start = time.perf_counter()
            exchange.world.allreduce_sum(exchange.buffer)
            alone.append(time.perf_counter() - start)
    if caffelite.solver_rank() == 0:
        print(json.dumps({"times": times, "ranks": caffelite.solver_count(),
                          "allreduce": exchange.allreduce_seconds if exchange else [],
                          "allreduce_alone": alone}))


def run_side(side, name, source, args):
    batch = BATCHES[name]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--net", name,
               "--source", source, "--iters", str(args.iters), "--warmup", str(args.warmup)]
    if side == "mpi":
        env["CAFFELITE_NUM_THREADS"] = "1"
        command = ["mpiexec", "-n", "2"] + command + ["--batch", str(batch // 2)]
    else:
        env["CAFFELITE_NUM_THREADS"] = "2"
        command += ["--batch", str(batch)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{side} {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- one rank's compute and the scaling model of docs/scaling.md ---------------------------
COMPUTE_BATCHES = {"lenet": 32, "cifar10_quick": 50, "caffenet": 32}
LINKS = {"10 Gb/s": (10e9 / 8, 30e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, latency
LAST_LINK = "100 Gb/s"
SMALL_BATCH = 4


def caffenet_spec(batch):
    """AlexNet as BVLC's CaffeNet (61 M parameters) on Input layers."""
    import caffelite.layers as L
    from caffelite import NetSpec
    from caffelite import params as P

    n = NetSpec("caffenet")
    n.data, n.label = L.Input(shape=[dict(dim=[batch, 3, 227, 227]), dict(dim=[batch])],
                              ntop=2)
    gauss = dict(type="gaussian", std=0.01)
    top = n.data
    for k, (out, kernel, stride, pad, group, pool, lrn) in enumerate([
            (96, 11, 4, 0, 1, True, True), (256, 5, 1, 2, 2, True, True),
            (384, 3, 1, 1, 1, False, False), (384, 3, 1, 1, 2, False, False),
            (256, 3, 1, 1, 2, True, False)], 1):
        top = L.Convolution(top, num_output=out, kernel_size=kernel, stride=stride, pad=pad,
                            group=group, weight_filler=gauss)
        setattr(n, f"conv{k}", top)
        setattr(n, f"relu{k}", L.ReLU(top, in_place=True))
        if pool:
            top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
            setattr(n, f"pool{k}", top)
        if lrn:
            top = L.LRN(top, local_size=5, alpha=1e-4, beta=0.75)
            setattr(n, f"norm{k}", top)
    for k, out in ((6, 4096), (7, 4096), (8, 1000)):
        top = L.InnerProduct(top, num_output=out, weight_filler=gauss)
        setattr(n, f"fc{k}", top)
        if k < 8:
            setattr(n, f"relu{k}", L.ReLU(top, in_place=True))
            setattr(n, f"drop{k}", L.Dropout(top, in_place=True, dropout_ratio=0.5))
    n.loss = L.SoftmaxWithLoss(top, n.label)
    return n.to_proto()


def compute(name, iters, batch):
    """(median seconds of one training iteration on this process's threads, parameter
    bytes) for the net at this batch, on random Input data."""
    import caffelite
    from caffelite.proto import caffelite_pb2 as pb

    net = caffenet_spec(batch) if name == "caffenet" else net_spec(name, batch)
    param = pb.SolverParameter(base_lr=0.001, momentum=0.9, lr_policy="fixed", display=0,
                               max_iter=1 << 30, random_seed=1, snapshot_after_train=False)
    param.net_param.CopyFrom(net)
    solver = caffelite.get_solver(param)
    rng = np.random.default_rng(0)
    solver.net.blobs["data"].data[...] = rng.random(solver.net.blobs["data"].shape)
    solver.net.blobs["label"].data[...] = rng.integers(0, 10, batch)
    solver.step(1)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    size = sum(p.data.nbytes for p in solver.learnable_params)
    return statistics.median(times), size


def ring_seconds(param_bytes, ranks, link):
    """A ring allreduce: 2 (N-1) steps, each moving 1/N of the bytes over the link."""
    bandwidth, latency = LINKS[link]
    return 2 * (ranks - 1) * (latency + param_bytes / ranks / bandwidth)


def scaling_table(name, seconds, param_bytes, small):
    """Markdown rows: per N and link, bytes each rank sends, exchange and iteration time,
    and the efficiency t_compute / t_iteration (no overlap of exchange and backward), the
    batch per rank fixed (weak scaling); then the global batch fixed (strong scaling), from
    the compute time at a small batch too: t(b) = fixed + b * per_image."""
    batch = COMPUTE_BATCHES[name]
    per_image = (seconds - small) / (batch - SMALL_BATCH)
    fixed = small - SMALL_BATCH * per_image
    rows = [f"{name}: one rank {seconds * 1000:.1f} ms per iteration at batch {batch} "
            f"({small * 1000:.1f} ms at batch {SMALL_BATCH}: {fixed * 1000:.1f} ms + "
            f"{per_image * 1000:.2f} ms per image), parameters {param_bytes / 1e6:.2f} MB", "",
            f"Batch {batch} per rank (the global batch grows with N):", "",
            "| N | MB sent per rank | " + " | ".join(
                f"{link}: exchange ms, iteration ms, efficiency" for link in LINKS) + " |",
            "|---|---|" + "---|" * len(LINKS)]
    for ranks in (2, 4, 8, 16, 32, 64):
        sent = 2 * (ranks - 1) / ranks * param_bytes
        cells = []
        for link in LINKS:
            exchange = ring_seconds(param_bytes, ranks, link)
            total = seconds + exchange
            cells.append(f"{exchange * 1000:.1f}, {total * 1000:.0f}, {seconds / total:.0%}")
        rows.append(f"| {ranks} | {sent / 1e6:.2f} | " + " | ".join(cells) + " |")
    total_batch = 2 * batch
    rows += ["", f"Global batch {total_batch} split over N ranks (iteration ms and speedup "
                 f"over one rank, {LAST_LINK}):", "", "| N | batch per rank | iteration ms | "
             "speedup |", "|---|---|---|---|"]
    one = fixed + total_batch * per_image
    for ranks in (1, 2, 4, 8, 16, 32, 64):
        if ranks > total_batch:
            break
        total = fixed + total_batch / ranks * per_image + (
            ring_seconds(param_bytes, ranks, LAST_LINK) if ranks > 1 else 0)
        rows.append(f"| {ranks} | {total_batch / ranks:g} | {total * 1000:.1f} | "
                    f"{one / total:.1f} |")
    return "\n".join(rows)


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return [round(v * 1000, 2) for v in q]  # ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="lenet,cifar10_quick")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--scaling", action="store_true",
                        help="measure one rank's iteration (LeNet b32, CIFAR-10 quick b50, "
                             "CaffeNet b32) and print docs/scaling.md's model tables")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.scaling:
        for name, batch in COMPUTE_BATCHES.items():
            iters = 3 if name == "caffenet" else args.iters
            seconds, size = compute(name, iters, batch)
            small, _ = compute(name, iters, SMALL_BATCH)
            print(scaling_table(name, seconds, size, small) + "\n")
        return
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in args.nets.split(","):
            source = dataset(name, directory)
            samples = {"mpi": {"times": [], "allreduce": [], "allreduce_alone": []},
                       "threads": {"times": []}}
            for _ in range(args.rounds):
                for side in ("mpi", "threads"):
                    got = run_side(side, name, source, args)
                    for key in samples[side]:
                        samples[side][key] += got[key]
            batch = BATCHES[name]
            results[name] = {side: {
                "images_per_s": round(batch / statistics.median(s["times"]), 1),
                "iteration_ms_quartiles": quartiles(s["times"]),
                **({"allreduce_ms_quartiles": quartiles(s["allreduce"]),
                    "allreduce_alone_ms_quartiles": quartiles(s["allreduce_alone"])}
                   if "allreduce" in s else {})} for side, s in samples.items()}
            results[name]["batch"] = batch
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for name, result in results.items():
        print(f"{name} b{result['batch']} (global):")
        for side, label in (("mpi", "mpiexec -n 2, 1 thread/rank"),
                            ("threads", "1 process, 2 threads")):
            r = result[side]
            extra = (f", exchange {r['allreduce_ms_quartiles']} ms in training, "
                     f"{r['allreduce_alone_ms_quartiles']} ms alone"
                     if "allreduce_ms_quartiles" in r else "")
            print(f"  {label:30s} {r['images_per_s']:8.1f} img/s, iteration "
                  f"{r['iteration_ms_quartiles']} ms (quartiles){extra}")


if __name__ == "__main__":
    main()
