#!/usr/bin/env python
"""Net and Solver machinery cost: solver.step(1) against the same layer math in a bare loop.

    python scripts/bench_overhead.py                 # LeNet b64 and CIFAR-10 quick b100
    python scripts/bench_overhead.py --nets lenet:64 --iters 50 --threads 1

The bare loop calls every layer's forward and backward directly on the net's own blobs (no
reshape, no loss bookkeeping, no callbacks, no learning-rate policy), with the same threading
as a net pass, and applies the same SGD step (weight decay, momentum) with in-place NumPy.
Both run alternately in one process; the overhead is step / bare − 1 (median ms/iteration).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

from caffelite import runtime  # noqa: E402


class BareLoop:
    """The solver's iteration with nothing but the layer calls and the update arithmetic."""

    def __init__(self, solver):
        self.net, self.solver = solver.net, solver
        net = self.net
        self.steps = list(zip(net.layers, net.bottom_vecs, net.top_vecs, net.layer_need_backward,
                              net.bottom_need_backward))
        p = solver.param
        dtype = net.learnable_params[0].data.dtype.type
        self.params = [(blob, history, dtype(p.base_lr * lr), dtype(p.weight_decay * decay))
                       for blob, history, lr, decay in zip(net.learnable_params, solver.history,
                                                           net.params_lr,
                                                           net.params_weight_decay)]
        self.momentum = dtype(p.momentum)

    def step(self):
        for blob, *_ in self.params:
            blob.diff[...] = 0
        # the same threading as a net pass: OpenBLAS on one thread, weight gradients deferred,
        # denormals flushed
        with runtime.flush_denormals():
            with runtime.single_blas_thread():
                for layer, bottom, top, _, _ in self.steps:
                    layer.forward(bottom, top)
            with runtime.single_blas_thread(), runtime.deferring():
                for layer, bottom, top, need, propagate in reversed(self.steps):
                    if need:
                        layer.backward(top, propagate, bottom)
            for blob, history, rate, decay in self.params:
                blob.diff += decay * blob.data
                history *= self.momentum
                history += rate * blob.diff
                blob.data -= history


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=["lenet:64", "cifar10_quick:100"])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    bench.set_threads(args.threads)
    print(f"threads={args.threads}; median (min) ms per training iteration")
    print(f"{'net':<14}{'batch':>6}{'solver.step':>18}{'bare loop':>18}{'overhead':>10}")
    for entry in args.nets:
        name, _, batch = entry.partition(":")
        side = bench.make_side("caffelite", name, int(batch or 64))
        runs = {"step": lambda solver=side.solver: solver.step(1),
                "bare": BareLoop(side.solver).step}
        times = {key: [] for key in runs}
        for i in range(args.warmup + args.iters):
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                if i >= args.warmup:
                    times[key].append((time.perf_counter() - start) * 1e3)
        step, bare = (statistics.median(times[k]) for k in ("step", "bare"))
        print(f"{name:<14}{batch:>6}{step:>10.2f} ({min(times['step']):.2f})"
              f"{bare:>10.2f} ({min(times['bare']):.2f}){(step / bare - 1) * 100:>9.1f}%")


if __name__ == "__main__":
    main()
