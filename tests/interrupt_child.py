"""Run by test_interrupts.py in a subprocess: Ctrl-C (SIGINT) lands at random moments of
solver.step() on two threads; every one must come out as KeyboardInterrupt, and after all of
them the runtime must be back in its resting state and compute what it computed before.

Usage: python interrupt_child.py CONFIG TRIALS SEED [SIGNALS]

With SIGNALS 2, each trial sends a second SIGINT 0-2 ms after the first (a user pressing
Ctrl-C twice): it may land while the first is still unwinding, inside the pool's own wait.
"""
import faulthandler
import os
import random
import signal
import sys
import threading
import time

import numpy as np

import caffelite
from caffelite import runtime
from caffelite.runtime import blas, deferred, fpmode, pool

HANG_SECONDS = 20  # one interrupted step() that has not returned by then is a hang


class Sender(threading.Thread):
    """Sends SIGINT to this process `delay` seconds after each request (and again `gap`
    seconds later for each gap given); `sent` is set once all are sent."""

    def __init__(self):
        super().__init__(daemon=True)
        self.requests, self.ready = [], threading.Semaphore(0)
        self.sent_at, self.sent = None, threading.Event()
        self.start()

    def request(self, delay, gaps=()):
        self.sent.clear()
        self.requests.append((delay, gaps))
        self.ready.release()

    def run(self):
        while True:
            self.ready.acquire()
            delay, gaps = self.requests.pop(0)
            time.sleep(delay)
            self.sent_at = time.perf_counter()
            os.kill(os.getpid(), signal.SIGINT)
            for gap in gaps:
                time.sleep(gap)
                os.kill(os.getpid(), signal.SIGINT)
            self.sent.set()


def gradients(net):
    """The parameter gradients of the batch already in the data layer's tops."""
    for blob in net.learnable_params:
        blob.diff[...] = 0
    net.forward_from_to(1)
    net.backward()
    return [blob.diff.copy() for blob in net.learnable_params]


def resting_state():
    """What every interrupted pass must leave behind once the next pass has run."""
    return {
        "workers idle": all(worker.idle() for worker in pool._workers),
        "pool free": "owner" not in pool._pool,
        "gradient thread idle": not runtime.deferred_busy(),
        "no deferring block": not deferred._passes._local.__dict__.get("frames"),
        "no flushing block": not fpmode._blocks._local.__dict__.get("frames"),
        "denormals not flushed": not fpmode.flushing(),
        "no single-BLAS block": not blas._blas_inside,
    }


def main(config, trials, seed, signals=1):
    runtime.set_num_threads(2)
    solver = caffelite.get_solver(config)
    blas_before = runtime.blas_threads()
    solver.step(2)  # the workers and the gradient thread exist from here on
    started = time.perf_counter()
    solver.step(3)
    step_seconds = (time.perf_counter() - started) / 3
    rng = random.Random(seed)
    sender = Sender()
    latencies = []
    for _ in range(trials):
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        delay = rng.uniform(0, 3 * step_seconds)  # forward, backward or update
        gaps = [rng.uniform(0, 0.002) for _ in range(signals - 1)]
        stepped, latency = False, None
        while True:  # until every signal of the trial has been sent and handled
            try:
                try:
                    if not stepped:
                        stepped = True
                        sender.request(delay, gaps)
                        solver.step(10 ** 9)
                        sys.exit("step() returned without the KeyboardInterrupt")
                    sender.sent.wait()
                    time.sleep(0.005)  # a signal sent is handled within this
                    break
                except KeyboardInterrupt:
                    if latency is None:
                        latency = time.perf_counter() - sender.sent_at
            except KeyboardInterrupt:
                pass  # the second one, inside the handler above
        latencies.append(latency)
        faulthandler.cancel_dump_traceback_later()
    # After the last interrupt, one pass heals whatever an interrupted block left.
    solver.step(1)
    state = resting_state()
    broken = [name for name, ok in state.items() if not ok]
    if broken:
        sys.exit(f"not at rest after {trials} interrupts: {broken}")
    if runtime.blas_threads() != blas_before:
        sys.exit(f"OpenBLAS threads {runtime.blas_threads()}, {blas_before} before")
    # Two threads still compute what one does (up to the order of float sums).
    net = solver.net
    net.forward()
    two = gradients(net)
    runtime.set_num_threads(1)
    one = gradients(net)
    for a, b in zip(two, one):
        if not np.allclose(a, b, rtol=1e-4, atol=1e-6):
            sys.exit("gradients on two threads differ from one thread's after the interrupts")
    print(f"{trials} trials of {signals} SIGINT, step {step_seconds * 1e3:.1f} ms, "
          f"KeyboardInterrupt after {np.median(latencies) * 1e3:.1f} ms median, "
          f"{max(latencies) * 1e3:.1f} ms max")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(int, sys.argv[4:5]))
