#!/usr/bin/env python
"""caffelite's forward against onnxruntime running the exported model, alternately timed.

    python scripts/bench_onnx.py                    # LeNet b64, CIFAR-10 quick b100, CaffeNet b10
    python scripts/bench_onnx.py --nets lenet:64 --iters 30 --json

Each net is a BVLC example from ../shared/caffe/examples (CAFFELITE_SHARED), given seeded
random weights, exported with caffelite.export_onnx and run by onnxruntime's CPU provider on
the same inputs, the same batch and the same thread count (intra-op threads = --threads,
sequential execution). The two sides take turns in short blocks (bench.time_alternately), so
each ratio caffelite / onnxruntime compares neighbours in time on a shared machine.
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (time_alternately, summary, set_threads)

import caffelite  # noqa: E402
from caffelite.formats.config import read_net_param  # noqa: E402
from caffelite.proto import caffelite_pb2 as pb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAFFELITE_SHARED", ROOT.parent / "shared"))
NETS = {  # name -> (example prototxt, input (C, H, W); None: the deploy net's own Input)
    "lenet": ("mnist/lenet.prototxt", None),
    "cifar10_quick": ("cifar10/cifar10_quick.prototxt", None),
    "caffenet": ("feature_extraction/imagenet_val.prototxt", (3, 227, 227)),  # CaffeNet
}


def deploy(name, batch):
    """The example as a deploy NetParameter with an Input of `batch` items."""
    path, chw = NETS[name]
    param = read_net_param(str(SHARED / "caffe" / "examples" / path))
    if chw is None:
        for layer in param.layer:
            if layer.type == "Input":
                layer.input_param.shape[0].dim[0] = batch
        return param
    out = pb.NetParameter(name=param.name)
    out.layer.add(name="data", type="Input", top=["data"]).input_param.shape.add(
        dim=[batch, *chw])
    for layer in param.layer:
        if layer.bottom and layer.type != "Accuracy" and not layer.type.endswith("Loss"):
            out.layer.add().CopyFrom(layer)
    return out


class CaffeliteSide:
    def __init__(self, net, inputs):
        self.net, self.inputs = net, inputs

    def forward(self):
        self.net.forward(**self.inputs)


class OnnxSide:
    def __init__(self, model, inputs, threads, spin=True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if not spin:  # idle pool threads sleep instead of spinning (a busy shared machine)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = inputs

    def forward(self):
        self.session.run(None, self.inputs)


def sides(name, batch, threads):
    rng = np.random.default_rng(0)
    net = caffelite.Net(deploy(name, batch), caffelite.TEST)
    for blobs in net.params.values():
        for i, blob in enumerate(blobs):
            std = 1 / np.sqrt(blob.count(1)) if i == 0 and len(blob.shape) > 1 else 0.1
            blob.data[...] = rng.standard_normal(blob.shape).astype(np.float32) * std
    inputs = {n: rng.standard_normal(net.blobs[n].shape).astype(np.float32) for n in net.inputs}
    model = caffelite.export_onnx(net)
    return {"caffelite": CaffeliteSide(net, inputs),
            "onnxruntime": OnnxSide(model, inputs, threads),
            "ort_nospin": OnnxSide(model, inputs, threads, spin=False)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=["lenet:64", "cifar10_quick:100",
                                                      "caffenet:10"],
                        help=f"net:batch entries (net in {', '.join(NETS)})")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    bench.set_threads(args.threads)
    results = []
    for entry in args.nets:
        name, _, batch = entry.partition(":")
        batch = int(batch or 64)
        times = bench.time_alternately(sides(name, batch, args.threads), "forward", args.iters,
                                       args.warmup, max(1, args.block))
        ms, ratios = bench.summary(times)
        quartiles = {k: statistics.quantiles(t, n=4, method="inclusive") if len(t) > 1 else t * 3
                     for k, t in times.items()}
        results.append({"net": name, "batch": batch, "ms": ms, "quartiles_ms": quartiles,
                        "ratio": ratios})
    if args.json:
        print(json.dumps({"threads": args.threads, "results": results}, indent=1))
        return
    keys = ("caffelite", "onnxruntime", "ort_nospin")
    print(f"threads={args.threads}; forward, median (quartiles) ms; ratio = caffelite / "
          "onnxruntime per iteration, median (quartiles); ort_nospin: pool threads sleep")
    print(f"{'net':<14}{'batch':>6}" + "".join(f"{k:>26}" for k in keys)
          + "".join(f"{'/' + k:>20}" for k in keys[1:]))
    for row in results:
        q = row["quartiles_ms"]
        cells = [f"{q[k][1]:.2f} ({q[k][0]:.2f}-{q[k][2]:.2f})".rjust(26) for k in keys]
        ratios = [f"{r['median']:.2f} ({r['q1']:.2f}-{r['q3']:.2f})".rjust(20)
                  for r in row["ratio"].values()]
        print(f"{row['net']:<14}{row['batch']:>6}" + "".join(cells) + "".join(ratios))


if __name__ == "__main__":
    main()
