"""The batch-splitting thread pool: parallel() runs contiguous ranges on worker threads."""
import _thread
import sys
import threading

import numpy as np

from .arrays import get_array_module
from .blas import single_blas_thread
from .deferred import deferred_busy
from .fpmode import flushing, follow_flush
from .threads import num_threads, on_stack, wait_out, wake


class _Worker(threading.Thread):
    """One daemon thread running submitted calls; join_call() waits for the last one.

    The hand-offs are raw locks used as wake-ups, released by the other thread: a worker
    wakes about 11 µs after submit() and an empty parallel() costs about 20 µs, against 31
    and 50 µs with threading.Semaphore, whose acquire and release run a Condition in Python.
    Whether a call was handed over, taken and finished is kept in three counters (see
    threads.py for why a Ctrl-C at any bytecode then cannot lose or repeat a hand-off).
    """

    def __init__(self):
        super().__init__(daemon=True)
        self._go, self._done = _thread.allocate_lock(), _thread.allocate_lock()
        self._go.acquire()
        self._done.acquire()
        self._call, self._flush, self._error = None, False, None
        self._sent = self._taken = self._finished = 0  # written by submit, run, run
        self.flushing_now = False
        self.start()

    def run(self):
        while True:
            self._go.acquire()
            sent = self._sent
            if sent == self._taken:  # a wake-up given twice
                continue
            self._taken = sent
            try:
                follow_flush(self, self._flush)
                self._call()
            except BaseException as exc:  # re-raised in the submitting thread
                self._error = exc
            self._call = None
            self._finished = sent
            wake(self._done)

    def idle(self):
        return self._finished == self._sent

    def _kick(self):
        if self._taken != self._sent:  # an interrupted submit() may not have woken us
            wake(self._go)

    def submit(self, call, flush=False):
        if self._finished != self._sent:  # a call whose join a second Ctrl-C cut short
            wait_out(self.idle, self._done, self._kick)
        self._call, self._flush, self._error = call, flush, None
        self._sent += 1  # the hand-off: from here on the call is the worker's
        wake(self._go)

    def join_call(self):
        if self._finished != self._sent:
            wait_out(self.idle, self._done, self._kick)
        self._done.acquire(blocking=False)  # the wake-up of a call that finished early
        if self._error is not None:
            error, self._error = self._error, None
            raise error


_workers = []
# "owner": (thread id, frame) of the parallel() call using the workers. Taken with one
# setdefault (atomic under the GIL); a record left by a call that a Ctrl-C cut short between
# taking and giving back is recognised by its frame having returned.
_pool = {}


def _take_pool():
    """The pool's owner token for this call, or None when another thread, or an enclosing
    parallel() in this thread, uses the workers."""
    token = (threading.get_ident(), sys._getframe(1))
    owner = _pool.setdefault("owner", token)
    if owner is token:
        return token
    if owner[0] != token[0] or on_stack(owner[1]):
        return None
    _pool["owner"] = token  # left by an interrupted call of this thread
    return token


def parallel(function, count, min_items=1):
    """function(start, stop) over `count` items split into contiguous ranges, one per thread.

    The calling thread runs the first range. With one thread (or too few items) it is one
    call function(0, count). NumPy releases the GIL in its loops and BLAS calls, so ranges
    run concurrently, each calling BLAS on one thread. Nested calls run serially.
    """
    threads = min(num_threads(), count // max(1, min_items))
    if threads <= 1:
        function(0, count)
        return
    # The ranges depend on the shapes only, never on timing: when the threads are taken (a
    # nested call, or the gradient thread at work) the same ranges run one after another, so
    # a run is bit-identical whatever the scheduling.
    bounds = [count * i // threads for i in range(threads + 1)]
    token = None if deferred_busy() else _take_pool()
    if token is None:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            function(start, stop)
        return
    try:
        if token[0] in single_blas_thread.threads_inside:  # inside a net pass: already one
            _run_ranges(function, bounds)
        else:
            with single_blas_thread():
                _run_ranges(function, bounds)
    finally:
        _pool.pop("owner", None)


def _run_ranges(function, bounds):
    """The ranges after the first on the workers, the first here; then wait for all."""
    threads = len(bounds) - 1
    while len(_workers) < threads - 1:
        _workers.append(_Worker())
    workers = _workers[:threads - 1]
    error = None
    try:
        flush = flushing()
        for worker, start, stop in zip(workers, bounds[1:-1], bounds[2:]):
            worker.submit(lambda a=start, b=stop: function(a, b), flush)
        function(bounds[0], bounds[1])
    except BaseException as exc:
        error = exc
    for worker in workers:
        try:
            worker.join_call()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


# Elementwise passes are split among the threads from this many values a thread: they are
# memory-bound, and two cores stream about 1.6x what one does (ReLU on 819,200 values:
# 0.69 -> 0.45 ms); below it, handing work to a thread costs what the split gains.
ELEMENTWISE_MIN = 1 << 18


def elementwise(function, *arrays):
    """function(*parts) over matching flat ranges of same-sized contiguous arrays, split
    among the threads when they are large; one call on the whole (flattened) arrays
    otherwise."""
    flat = [array.reshape(-1) for array in arrays]
    if get_array_module(*arrays) is not np or flat[0].size < 2 * ELEMENTWISE_MIN:
        function(*flat)
        return
    parallel(lambda start, stop: function(*(a[start:stop] for a in flat)), flat[0].size,
             min_items=ELEMENTWISE_MIN)
