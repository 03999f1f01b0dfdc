"""How many threads caffelite splits work over, and hand-offs between threads that survive a
Ctrl-C arriving at any moment."""
import os
import sys
import threading


def _default_threads():
    for name in ("CAFFELITE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_num_threads = _default_threads()


def num_threads():
    """How many threads layers split their batch work over (CAFFELITE_NUM_THREADS)."""
    return _num_threads


def set_num_threads(count):
    """Threads for layer work (like torch.set_num_threads). With more than one, each BLAS
    call inside a layer runs on one thread; the layers split the batch among the threads."""
    global _num_threads
    _num_threads = max(1, int(count))


# Why hand-offs are built this way. Python runs a SIGINT handler in the main thread between
# two bytecodes (after any call returns, at a function's entry, at a loop's jump), so the
# KeyboardInterrupt of a Ctrl-C can come out of any line, including the line right after a
# lock.acquire() that succeeded: a waiter that then acquires again, on a lock it now holds,
# waits forever. So nothing here infers a state from whether a wait returned. The truth is
# kept in counters, each written by one thread only (set before the wake-up is given); a
# raw lock is only a wake-up, which may be given twice (wake() tolerates that) or consumed
# late; every wait re-reads the counters, and a wait with a time limit re-gives a wake-up
# that an interrupted hand-off may have lost. Blocking the signal instead would not do: the
# kernel hands SIGINT to any thread that does not block it (OpenBLAS's, the user's), and
# Python then raises it in the main thread all the same.
KICK_AFTER = 0.05  # seconds a waiter sleeps before it re-gives a possibly lost wake-up


def wake(lock):
    """Release a wake-up lock, which may already be released (a wake-up given twice)."""
    try:
        lock.release()
    except RuntimeError:
        pass


def wait_out(finished, wakeup, kick=None):
    """Wait until finished() is true, sleeping on the wake-up lock `wakeup` in between, even
    through a Ctrl-C, which is raised afterwards: a thread's work must not outlive the pass
    that handed it over. kick() re-gives the other side's wake-up when a wait times out.

    A second Ctrl-C landing inside the except clause ends the wait early; callers then wait
    for the abandoned work before they hand over more (see pool._Worker.submit)."""
    interrupted = None
    while True:
        try:
            while not finished():
                if not wakeup.acquire(timeout=KICK_AFTER) and kick is not None:
                    kick()
            break
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


def on_stack(frame):
    """Whether `frame` is running in this thread (one of the callers of this call). A context
    whose __exit__ a Ctrl-C skipped leaves a record naming a frame that has returned."""
    current = sys._getframe(1)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


class Blocks:
    """The `with` blocks of one context manager running in each thread, kept as the frames
    that entered them (outermost first) instead of a depth count: a block whose __exit__ a
    Ctrl-C skipped (an interrupt at the entry of __exit__ is enough) is recognised by its
    frame having returned and dropped, so the context heals at its next use instead of
    staying entered for good. (A block held open across a generator's yield counts as left
    while the generator is suspended; caffelite's passes hold none.)"""

    def __init__(self):
        self._local = threading.local()

    def frames(self):
        """This thread's running blocks, the stale ones dropped."""
        frames = self._local.__dict__.setdefault("frames", [])
        while frames and not on_stack(frames[-1]):
            frames.pop()  # a block inside a returned frame cannot be running either
        return frames

    def enter(self, frame):
        """Record a block entered by `frame`; True when it is this thread's outermost."""
        frames = self.frames()
        frames.append(frame)
        return len(frames) == 1

    def exit(self, frame):
        """Drop the block entered by `frame`; True when this thread left its outermost."""
        frames = self._local.__dict__.setdefault("frames", [])
        for index in range(len(frames) - 1, -1, -1):  # the innermost block of that frame
            if frames[index] is frame:
                del frames[index:]
                break
        return not frames
