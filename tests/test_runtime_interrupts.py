"""The thread hand-offs against a KeyboardInterrupt at the worst bytecodes: right after a
wake-up was taken, between handing a call over and waking the worker, and in the entry of a
context's __exit__ (which then never runs)."""
import threading

import numpy as np
import pytest

from caffelite import runtime
from caffelite.runtime import blas, deferred, fpmode, pool


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(runtime.threads, "_num_threads", 2)


class InterruptAfterAcquire:
    """A lock whose next acquire() succeeds and then raises KeyboardInterrupt, as a Ctrl-C
    handled on the bytecode after a successful acquire does."""

    def __init__(self, lock):
        self.lock, self.armed = lock, True

    def acquire(self, *args, **kwargs):
        got = self.lock.acquire(*args, **kwargs)
        if got and self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return got

    def release(self):
        self.lock.release()


class InterruptBeforeRelease(InterruptAfterAcquire):
    """A lock whose next release() raises KeyboardInterrupt instead of releasing: the wake-up
    of a hand-off interrupted between its two steps."""

    def release(self):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        self.lock.release()


def slow_range(finished):
    def work(start, stop):
        if start:
            threading.Event().wait(0.05)
            finished.append(start)
    return work


@pytest.mark.timeout(20)
def test_interrupt_right_after_the_join_took_the_wake_up(two_threads):
    runtime.parallel(lambda start, stop: None, 2)  # the worker exists
    worker = pool._workers[0]
    worker._done = InterruptAfterAcquire(worker._done)
    finished = []
    with pytest.raises(KeyboardInterrupt):
        runtime.parallel(slow_range(finished), 2)
    assert finished == [1]  # the range finished before the interrupt came out
    worker._done = worker._done.lock
    finished.clear()
    runtime.parallel(slow_range(finished), 2)  # and the next call is joined, not skipped
    assert finished == [1]


@pytest.mark.timeout(20)
def test_interrupt_between_handing_over_and_waking_the_worker(two_threads):
    runtime.parallel(lambda start, stop: None, 2)
    worker = pool._workers[0]
    worker._go = InterruptBeforeRelease(worker._go)
    finished = []
    with pytest.raises(KeyboardInterrupt):
        runtime.parallel(slow_range(finished), 2)
    # The call was the worker's from `_sent += 1`: the join woke it and waited for it.
    assert finished == [1]
    worker._go = worker._go.lock
    finished.clear()
    runtime.parallel(slow_range(finished), 2)
    assert finished == [1]


@pytest.mark.timeout(20)
def test_a_join_cut_short_is_completed_before_the_worker_gets_more(two_threads):
    runtime.parallel(lambda start, stop: None, 2)
    worker = pool._workers[0]
    release, order = threading.Event(), []
    worker.submit(lambda: (release.wait(), order.append("first")))
    # (no join: as if a second Ctrl-C had ended it) the next submit waits for the first call
    threading.Timer(0.1, release.set).start()
    worker.submit(lambda: order.append("second"))
    worker.join_call()
    assert order == ["first", "second"]


@pytest.mark.timeout(20)
def test_interrupted_deferred_wait_still_waits_for_the_tasks(two_threads):
    done = []
    with runtime.deferring():
        assert runtime.defer(lambda: done.append("warm"))
    gradient_thread = deferred._deferred
    gradient_thread._idle = InterruptAfterAcquire(gradient_thread._idle)
    with pytest.raises(KeyboardInterrupt):
        with runtime.deferring():
            runtime.defer(lambda: (threading.Event().wait(0.05), done.append("task")))
    assert done == ["warm", "task"]
    gradient_thread._idle = gradient_thread._idle.lock


def enter_without_exit(context):
    """A block whose __exit__ never ran: what a Ctrl-C at the entry of __exit__ leaves."""
    context.__enter__()


@pytest.mark.timeout(20)
def test_a_deferring_block_left_without_exit_does_not_keep_deferring(two_threads):
    enter_without_exit(runtime.deferring())
    ran = []
    assert not runtime.defer(lambda: ran.append(1))  # outside any pass: runs here, now
    assert ran == [1]
    with runtime.deferring():
        assert runtime.defer(lambda: threading.Event().wait(0.05) or ran.append(2))
    assert ran == [1, 2]  # the pass waited: its exit is the outermost again


@pytest.mark.skipif(fpmode._fp_modes is None, reason="no FP modes on this platform")
def test_a_flush_block_left_without_exit_heals_at_the_next_pass():
    tiny = 1e-38
    enter_without_exit(runtime.flush_denormals())
    with runtime.flush_denormals():
        pass
    assert not runtime.flushing()
    assert float(np.float32(tiny) * np.float32(0.5)) > 0  # denormals are back


def test_a_single_blas_block_left_without_exit_heals_at_the_next_pass():
    before = runtime.blas_threads()
    enter_without_exit(runtime.single_blas_thread())
    with runtime.single_blas_thread():
        pass
    assert not blas._blas_inside
    assert runtime.blas_threads() == before


@pytest.mark.timeout(20)
def test_a_pool_left_taken_by_an_interrupted_call_is_taken_back(two_threads):
    def interrupted_call():
        pool._take_pool()  # taken; the Ctrl-C came before the try that gives it back
    interrupted_call()
    assert "owner" in pool._pool
    threads = set()
    runtime.parallel(lambda start, stop: threads.add(threading.get_ident()), 2)
    assert len(threads) == 2 and "owner" not in pool._pool
