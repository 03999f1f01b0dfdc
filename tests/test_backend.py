"""The thread pool behind every split layer: ranges, errors, nesting and Ctrl-C."""
import os
import signal
import threading
import time

import pytest

from caffelite import backend


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(backend, "_num_threads", 2)


def test_parallel_covers_every_item_once_on_two_threads(two_threads):
    ranges, threads = [], set()

    def work(start, stop):
        ranges.append((start, stop))
        threads.add(threading.get_ident())
    for _ in range(50):  # the workers are reused call after call
        ranges.clear()
        backend.parallel(work, 101)
        assert sorted(ranges) == [(0, 50), (50, 101)]
    assert len(threads) == 2


def test_parallel_runs_one_range_below_min_items(two_threads):
    ranges = []
    backend.parallel(lambda start, stop: ranges.append((start, stop)), 10, min_items=6)
    assert ranges == [(0, 10)]


@pytest.mark.parametrize("failing_start", [0, 5], ids=["caller", "worker"])
def test_an_error_in_a_range_reaches_the_caller_and_the_pool_goes_on(two_threads,
                                                                      failing_start):
    def work(start, stop):
        if start == failing_start:
            raise ValueError(f"range {start}")
    with pytest.raises(ValueError, match=f"range {failing_start}"):
        backend.parallel(work, 10)
    ranges = []
    backend.parallel(lambda start, stop: ranges.append((start, stop)), 10)
    assert sorted(ranges) == [(0, 5), (5, 10)]


def test_nested_parallel_runs_its_ranges_in_the_calling_thread(two_threads):
    inner = []

    def outer(start, stop):
        me = threading.get_ident()
        backend.parallel(lambda a, b: inner.append((start, a, b, threading.get_ident() == me)),
                         4)
    backend.parallel(outer, 2)
    assert sorted(inner) == [(0, 0, 2, True), (0, 2, 4, True), (1, 0, 2, True),
                             (1, 2, 4, True)]


def interrupted_while(start_work):
    """Run start_work(wait) in this thread, where wait() blocks a helper thread's work until
    SIGINT has been sent to this process; returns what the work recorded."""
    started, sent, finished = threading.Event(), threading.Event(), []

    def wait():
        started.set()
        sent.wait()
        time.sleep(0.05)  # the signal reaches the main thread while it waits here
        finished.append(True)

    def interrupt():
        started.wait()
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()
    sender = threading.Thread(target=interrupt)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        start_work(wait)
    sender.join()
    return finished


def test_ctrl_c_while_waiting_for_a_worker_waits_for_its_range(two_threads):
    """KeyboardInterrupt in the join: the worker's range finishes before it propagates, so
    the next parallel() does not start while the old range still runs."""
    assert interrupted_while(lambda wait: backend.parallel(
        lambda start, stop: start and wait(), 2)) == [True]
    finished = []
    backend.parallel(lambda start, stop: start and (time.sleep(0.1), finished.append(start)), 2)
    assert finished == [1]  # joined this call, not the interrupted one


def test_ctrl_c_while_waiting_for_deferred_tasks_waits_for_them(two_threads):
    def deferred(wait):
        with backend.deferring():
            assert backend.defer(wait)
    assert interrupted_while(deferred) == [True]
