"""The batch-splitting thread pool: parallel() runs contiguous ranges on worker threads."""
import _thread
import threading

import numpy as np

from .arrays import get_array_module
from .blas import single_blas_thread
from .deferred import deferred_busy
from .fpmode import flushing, follow_flush
from .threads import num_threads, wait_out


class _Worker(threading.Thread):
    """One daemon thread running submitted calls; join_call() waits for the last one.

    The hand-offs are raw locks, released by the other thread: a worker wakes about 11 µs
    after submit() and an empty parallel() costs about 20 µs, against 31 and 50 µs with
    threading.Semaphore, whose acquire and release run a Condition in Python.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self._go, self._done = _thread.allocate_lock(), _thread.allocate_lock()
        self._go.acquire()
        self._done.acquire()
        self._call, self._flush, self._error = None, False, None
        self.flushing_now = False
        self.start()

    def run(self):
        while True:
            self._go.acquire()
            try:
                follow_flush(self, self._flush)
                self._call()
            except BaseException as exc:  # re-raised in the submitting thread
                self._error = exc
            self._done.release()

    def submit(self, call, flush=False):
        self._call, self._flush, self._error = call, flush, None
        self._go.release()

    def join_call(self):
        wait_out(self._done.acquire)
        if self._error is not None:
            error, self._error = self._error, None
            raise error


_workers = []
_pool_lock = threading.Lock()


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
    if deferred_busy() or not _pool_lock.acquire(blocking=False):
        for start, stop in zip(bounds[:-1], bounds[1:]):
            function(start, stop)
        return
    try:
        with single_blas_thread():
            while len(_workers) < threads - 1:
                _workers.append(_Worker())
            flush = flushing()
            for worker, start, stop in zip(_workers, bounds[1:-1], bounds[2:]):
                worker.submit(lambda a=start, b=stop: function(a, b), flush)
            error = None
            try:
                function(bounds[0], bounds[1])
            except BaseException as exc:
                error = exc
            for worker in _workers[:threads - 1]:
                try:
                    worker.join_call()
                except BaseException as exc:
                    error = error or exc
            if error is not None:
                raise error
    finally:
        _pool_lock.release()


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
