#!/usr/bin/env python
"""The thread pool's own cost: an empty parallel() on two threads, outside a net pass and
inside one (where OpenBLAS is already on one thread), best of several rounds in µs.

    python scripts/bench_parallel.py [--rounds 7] [--calls 5000]

Run it alternately against two trees (PYTHONPATH=tree) to compare hand-off designs; on a
shared machine take the best of many runs.
"""
import argparse
import timeit

from caffelite import runtime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    runtime.set_num_threads(2)

    def empty(start, stop):
        pass

    runtime.parallel(empty, 2)  # the worker exists

    def in_pass():
        with runtime.single_blas_thread(), runtime.flush_denormals():
            for _ in range(args.calls):
                runtime.parallel(empty, 2)

    outside = min(timeit.timeit(lambda: runtime.parallel(empty, 2), number=args.calls)
                  for _ in range(args.rounds))
    inside = min(timeit.timeit(in_pass, number=1) for _ in range(args.rounds))
    print(f"empty parallel(): {outside / args.calls * 1e6:.1f} µs outside a pass, "
          f"{inside / args.calls * 1e6:.1f} µs inside one")


if __name__ == "__main__":
    main()
