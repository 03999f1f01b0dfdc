"""Deferred parameter gradients: a second thread runs weight-gradient GEMMs in a backward pass."""
import _thread
import sys
import threading

from .fpmode import flushing, follow_flush
from .threads import Blocks, num_threads, wait_out, wake


# Inside a net's backward pass, a layer may hand the GEMM of its weight gradient to a second
# thread and go on with its input gradient: the lower layers' backward (mostly short NumPy
# calls that hold the GIL between them) then overlaps with one long BLAS call that does not.
# Tasks run one at a time in order, so two layers accumulating into shared blobs never race;
# the pass waits for all of them before it returns.
class _Deferred(threading.Thread):
    """The gradient thread. The queue is the truth (a task leaves it once it has run); the
    two raw locks are only wake-ups, so a Ctrl-C at any bytecode of submit() or wait() loses
    nothing (threads.py says why)."""

    def __init__(self):
        super().__init__(daemon=True)
        self._tasks = []  # (task, flush); appended by the pass, popped here when done
        self._wake, self._idle = _thread.allocate_lock(), _thread.allocate_lock()
        self._wake.acquire()
        self._idle.acquire()
        self._error = None
        self.flushing_now = False
        self.start()

    def run(self):
        while True:
            self._wake.acquire()
            while self._tasks:
                task, flush = self._tasks[0]
                try:
                    follow_flush(self, flush)
                    task()
                except BaseException as exc:  # re-raised by wait()
                    self._error = self._error or exc
                self._tasks.pop(0)
            wake(self._idle)

    def submit(self, task):
        self._tasks.append((task, flushing()))
        wake(self._wake)

    def busy(self):
        return bool(self._tasks)

    def _kick(self):
        wake(self._wake)

    def wait(self):
        if self._tasks:
            wait_out(self._drained, self._idle, self._kick)
        self._idle.acquire(blocking=False)  # the wake-up of tasks that finished early
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _drained(self):
        return not self._tasks


_deferred = None
# The deferring() blocks running in each thread, by frame (threads.Blocks): a block whose
# __exit__ a Ctrl-C skipped must not leave defer() handing over tasks no pass waits for.
_passes = Blocks()


def defer(task):
    """Run task() now (False), or on the gradient thread inside a `deferring()` pass with more
    than one thread (True)."""
    global _deferred
    if num_threads() <= 1 or not _passes.frames():
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
        self._frame = sys._getframe(1)
        _passes.enter(self._frame)
        return self

    def __exit__(self, *exc):
        _passes.exit(self._frame)
        # Every exit waits (not only the outermost): nothing deferred outlives the block that
        # deferred it, whatever an interrupted block left behind.
        if _deferred is not None:
            _deferred.wait()
