"""Deferred parameter gradients: a second thread runs weight-gradient GEMMs in a backward pass."""
import threading

from .fpmode import flushing, follow_flush
from .threads import num_threads, wait_out


# Inside a net's backward pass, a layer may hand the GEMM of its weight gradient to a second
# thread and go on with its input gradient: the lower layers' backward (mostly short NumPy
# calls that hold the GIL between them) then overlaps with one long BLAS call that does not.
# Tasks run one at a time in order, so two layers accumulating into shared blobs never race;
# the pass waits for all of them before it returns.
class _Deferred(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self._tasks = []
        self._ready = threading.Condition()
        self._error = None
        self.flushing_now = False
        self.start()

    def run(self):
        while True:
            with self._ready:
                while not self._tasks:
                    self._ready.wait()
                task, flush = self._tasks[0]
            try:
                follow_flush(self, flush)
                task()
            except BaseException as exc:  # re-raised by wait()
                self._error = self._error or exc
            with self._ready:
                self._tasks.pop(0)
                self._ready.notify_all()

    def submit(self, task):
        with self._ready:
            self._tasks.append((task, flushing()))
            self._ready.notify_all()

    def busy(self):
        return bool(self._tasks)

    def wait(self):
        with self._ready:
            wait_out(lambda: self._ready.wait_for(lambda: not self._tasks))
        if self._error is not None:
            error, self._error = self._error, None
            raise error


_deferred = None
_deferring = threading.local()


def defer(task):
    """Run task() now (False), or on the gradient thread inside a `deferring()` pass with more
    than one thread (True)."""
    global _deferred
    if not getattr(_deferring, "depth", 0) or num_threads() <= 1:
        task()
        return False
    if _deferred is None:
        _deferred = _Deferred()
    _deferred.submit(task)
    return True


def deferred_busy():
    return _deferred is not None and _deferred.busy()


class deferring:
    """Context of a backward pass: defer() hands tasks to the gradient thread; on the way out
    every task has finished (and the first error, if any, is raised)."""

    def __enter__(self):
        _deferring.depth = getattr(_deferring, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _deferring.depth -= 1
        if _deferring.depth == 0 and _deferred is not None:
            _deferred.wait()
