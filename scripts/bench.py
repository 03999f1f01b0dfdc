#!/usr/bin/env python
"""caffelite against PyTorch on the same nets, timed alternately in one process.

    python scripts/bench.py                     # LeNet b64/b256, CIFAR-10 quick b100
    python scripts/bench.py --nets lenet --batch 64 --iters 30 --json

For each net: the training step (forward, backward, SGD momentum update) and forward only,
caffelite vs PyTorch NCHW and channels_last, float32, the same thread count, the sides taking
turns in short blocks (time_alternately). Peak memory of each side is measured in a child
process of its own (VmHWM). PyTorch: pip install torch==2.13.0.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import caffelite
import caffelite.layers as L
from caffelite import NetSpec, runtime
from caffelite import params as P
from caffelite.proto import caffelite_pb2 as pb

NETS = {"lenet": (1, 28, 10), "cifar10_quick": (3, 32, 10)}


def net_spec(name, batch, source=None):
    """The net as a caffelite NetParameter (Input layers, or a Data layer over the LMDB
    `source`, + SoftmaxWithLoss)."""
    channels, size, classes = NETS[name]
    n = NetSpec(name)
    if source:
        n.data, n.label = L.Data(data_param=dict(source=source, batch_size=batch,
                                                 backend=pb.DataParameter.LMDB),
                                 transform_param=dict(scale=1 / 256), ntop=2)
    else:
        n.data, n.label = L.Input(shape=[dict(dim=[batch, channels, size, size]),
                                         dict(dim=[batch])], ntop=2)
    gauss = dict(type="gaussian", std=0.01)
    if name == "lenet":
        xavier = dict(type="xavier")
        n.conv1 = L.Convolution(n.data, num_output=20, kernel_size=5, weight_filler=xavier)
        n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        n.conv2 = L.Convolution(n.pool1, num_output=50, kernel_size=5, weight_filler=xavier)
        n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=xavier)
        n.relu1 = L.ReLU(n.ip1, in_place=True)
        n.ip2 = L.InnerProduct(n.ip1, num_output=classes, weight_filler=xavier)
    else:
        n.conv1 = L.Convolution(n.data, num_output=32, kernel_size=5, pad=2, weight_filler=gauss)
        n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
        n.relu1 = L.ReLU(n.pool1, in_place=True)
        n.conv2 = L.Convolution(n.pool1, num_output=32, kernel_size=5, pad=2, weight_filler=gauss)
        n.relu2 = L.ReLU(n.conv2, in_place=True)
        n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.AVE, kernel_size=3, stride=2)
        n.conv3 = L.Convolution(n.pool2, num_output=64, kernel_size=5, pad=2, weight_filler=gauss)
        n.relu3 = L.ReLU(n.conv3, in_place=True)
        n.pool3 = L.Pooling(n.conv3, pool=P.Pooling.AVE, kernel_size=3, stride=2)
        n.ip1 = L.InnerProduct(n.pool3, num_output=64, weight_filler=gauss)
        n.ip2 = L.InnerProduct(n.ip1, num_output=classes, weight_filler=gauss)
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def torch_model(name):
    import torch.nn as nn

    if name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2, ceil_mode=True),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2, ceil_mode=True), nn.Flatten(),
            nn.Linear(800, 500), nn.ReLU(inplace=True), nn.Linear(500, 10))
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10))


def write_lmdb(name, batch, directory):
    """An LMDB of 4 batches of random images of the net's shape (for --data lmdb)."""
    from caffelite.data.datasets import write_datums

    channels, size, classes = NETS[name]
    path = os.path.join(directory, f"{name}_b{batch}_lmdb")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (4 * batch, channels, size, size), dtype=np.uint8)
        write_datums(path, "lmdb", images, rng.integers(0, classes, 4 * batch), "{:08d}")
    return path


class CaffeliteSide:
    def __init__(self, name, batch, rng, source=None):
        solver_param = pb.SolverParameter(base_lr=0.01, momentum=0.9, weight_decay=5e-4,
                                          lr_policy="fixed", max_iter=10**9, display=0,
                                          random_seed=1701, snapshot_after_train=False)
        solver_param.net_param.CopyFrom(net_spec(name, batch, source))
        self.solver = caffelite.get_solver(solver_param)
        self.net = self.solver.net
        # inference runs a TEST-phase net on the trained weights, as `caffe test` does
        self.test_net = caffelite.Net(solver_param.net_param, phase=caffelite.TEST)
        self.test_net.share_trained_layers_with(self.net)
        self.steps = 0
        if source:
            return
        channels, size, classes = NETS[name]
        data = rng.random((batch, channels, size, size))
        labels = rng.integers(0, classes, batch)
        for net in (self.net, self.test_net):
            net.blobs["data"].data[...] = data
            net.blobs["label"].data[...] = labels

    def train_step(self):
        self.solver.step(1)
        self.steps += 1

    def data_wait_ms(self):
        """Mean ms per training step spent waiting for the prefetch thread (Data over LMDB)."""
        waited = sum(getattr(layer, "data_wait", 0.0) for layer in self.net.layers)
        return 1e3 * waited / max(1, self.steps)

    def forward(self):
        self.test_net.forward()


class TorchSide:
    def __init__(self, name, batch, rng, channels_last):
        import torch

        if THREADS is not None:
            torch.set_num_threads(THREADS)
        self.torch = torch
        self.model = torch_model(name)
        self.optim = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                     weight_decay=5e-4)
        channels, size, classes = NETS[name]
        self.x = torch.from_numpy(rng.random((batch, channels, size, size), dtype=np.float32))
        self.y = torch.from_numpy(rng.integers(0, classes, batch))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.loss = torch.nn.CrossEntropyLoss()

    def train_step(self):
        self.optim.zero_grad(set_to_none=True)
        self.loss(self.model(self.x), self.y).backward()
        self.optim.step()

    def forward(self):
        with self.torch.no_grad():
            self.model(self.x)


def make_side(side, name, batch, source=None):
    rng = np.random.default_rng(0)
    if side == "caffelite":
        return CaffeliteSide(name, batch, rng, source)
    return TorchSide(name, batch, rng, channels_last=(side == "torch_cl"))


def time_alternately(sides, mode, iters, warmup, block=5):
    """`iters` timed runs of each side, the sides taking turns in blocks of `block` runs, each
    block after one untimed run. After its work PyTorch's OpenMP threads spin (libgomp's
    default wait policy) for up to tens of milliseconds and hold a core, so whatever runs next
    loses it: timed run by run, caffelite's LeNet b64 forward took 7.1-7.4 ms against
    5.5 ms run alone (PyTorch's own: 4.0 against 3.5). The untimed run takes that hit."""
    times = {key: [] for key in sides}
    for _ in range(warmup):
        for side in sides.values():
            getattr(side, mode)()
    done = 0
    while done < iters:
        count = min(block, iters - done)
        for key, side in sides.items():
            getattr(side, mode)()  # untimed
            for _ in range(count):
                start = time.perf_counter()
                getattr(side, mode)()
                times[key].append((time.perf_counter() - start) * 1e3)
        done += count
    return times


def summary(times):
    """median/min/max ms per side; and caffelite's ratio to each other side per iteration
    (median and quartiles): the sides alternate, so each ratio compares neighbours in time
    and a host whose load drifts moves both of its terms."""
    ms = {key: {"median": statistics.median(t), "min": min(t), "max": max(t)}
          for key, t in times.items()}
    ratios = {}
    for key, theirs in times.items():
        if key != "caffelite":
            paired = [ours / other for ours, other in zip(times["caffelite"], theirs)]
            if len(paired) == 1:
                paired *= 2  # quantiles() needs two values
            q1, median, q3 = statistics.quantiles(paired, n=4, method="inclusive")
            ratios[key] = {"median": median, "q1": q1, "q3": q3}
    return ms, ratios


THREADS = None


def set_threads(count):
    """The same thread count on both sides: PyTorch's intra-op pool (set when a PyTorch side
    is built, so a caffelite-only process never loads torch); caffelite's layer threads and
    NumPy's OpenBLAS (which caffelite holds at one thread inside its own threads)."""
    global THREADS
    THREADS = count
    runtime.set_num_threads(count)
    runtime.set_blas_threads(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def peak_memory_mb(side, name, batch, iters, threads):
    """Peak RSS (MB) of a child process that builds one side and trains `iters` steps."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
            f"import bench; bench.set_threads({threads});"
            f"s = bench.make_side({side!r}, {name!r}, {batch});"
            f"[s.train_step() for _ in range({iters})];"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024 if out.returncode == 0 else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=["lenet:64", "lenet:256",
                                                      "cifar10_quick:100"],
                        help=f"net:batch entries (net in {', '.join(NETS)})")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--block", type=int, default=5,
                        help="timed runs of one side before the next side's turn")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data", choices=["input", "lmdb"], default="input",
                        help="caffelite's data: fixed Input blobs, or a Data layer over an LMDB "
                             "(reports the data wait per iteration)")
    args = parser.parse_args()
    try:
        import torch  # noqa: F401

        side_keys = ["caffelite", "torch", "torch_cl"]
    except ImportError:
        print("PyTorch is not installed (pip install torch==2.13.0): timing caffelite alone",
              file=sys.stderr)
        side_keys = ["caffelite"]
    set_threads(args.threads)
    results = []
    for entry in args.nets:
        name, _, batch = entry.partition(":")
        batch = int(batch or 64)
        source = None
        if args.data == "lmdb":
            import tempfile

            source = write_lmdb(name, batch, tempfile.mkdtemp(prefix="caffelite-bench-"))
        sides = {key: make_side(key, name, batch, source) for key in side_keys}
        for mode in ("train_step", "forward"):
            ms, ratios = summary(time_alternately(sides, mode, args.iters, args.warmup,
                                                  max(1, args.block)))
            row = {"net": name, "batch": batch, "mode": mode, "ms": ms, "ratio": ratios}
            if source and mode == "train_step":
                row["data_wait_ms"] = sides["caffelite"].data_wait_ms()
            if mode == "train_step" and not args.no_memory:
                row["peak_mb"] = {k: peak_memory_mb(k, name, batch, 5, args.threads)
                                  for k in side_keys}
            results.append(row)
    kernels = runtime.compiled_kernels()  # MAX pooling and im2col compiled (Numba), or NumPy
    if args.json:
        print(json.dumps({"threads": args.threads, "compiled_kernels": kernels,
                          "results": results}, indent=1))
        return
    print(f"threads={args.threads}; compiled kernels {'on' if kernels else 'off'}; median "
          "(min-max) ms per iteration; ratio = caffelite / PyTorch per iteration, median "
          "(quartiles)")
    header = f"{'net':<14}{'batch':>6} {'mode':<11}" + "".join(f"{k:>22}" for k in side_keys)
    if len(side_keys) == 3:
        header += f"{'/NCHW':>19}{'/ch_last':>19}"
    print(header)
    for row in results:
        ms = row["ms"]
        line = f"{row['net']:<14}{row['batch']:>6} {row['mode']:<11}"
        line += "".join(f"{ms[k]['median']:>9.1f} ({ms[k]['min']:.1f}-{ms[k]['max']:.1f})"
                        .rjust(22) for k in side_keys)
        line += "".join(f"{r['median']:.2f} ({r['q1']:.2f}-{r['q3']:.2f})".rjust(19)
                        for r in row["ratio"].values())
        print(line)
        if "data_wait_ms" in row:
            print(" " * 21 + f"caffelite data wait: {row['data_wait_ms']:.2f} ms per iteration")
        if "peak_mb" in row:
            print(" " * 21 + "peak RSS MB: " + ", ".join(f"{k} {v:.0f}"
                                                       for k, v in row["peak_mb"].items()))


if __name__ == "__main__":
    main()
