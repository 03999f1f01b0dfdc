"""The thread pool behind every split layer: ranges, errors, nesting, Ctrl-C, denormals."""
import os
import signal
import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite import Net, runtime
from caffelite.proto import caffelite_pb2 as pb


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(runtime.threads, "_num_threads", 2)


def test_parallel_covers_every_item_once_on_two_threads(two_threads):
    ranges, threads = [], set()

    def work(start, stop):
        ranges.append((start, stop))
        threads.add(threading.get_ident())
    for _ in range(50):  # the workers are reused call after call
        ranges.clear()
        runtime.parallel(work, 101)
        assert sorted(ranges) == [(0, 50), (50, 101)]
    assert len(threads) == 2


def test_parallel_runs_one_range_below_min_items(two_threads):
    ranges = []
    runtime.parallel(lambda start, stop: ranges.append((start, stop)), 10, min_items=6)
    assert ranges == [(0, 10)]


@pytest.mark.parametrize("failing_start", [0, 5], ids=["caller", "worker"])
def test_an_error_in_a_range_reaches_the_caller_and_the_pool_goes_on(two_threads,
                                                                      failing_start):
    def work(start, stop):
        if start == failing_start:
            raise ValueError(f"range {start}")
    with pytest.raises(ValueError, match=f"range {failing_start}"):
        runtime.parallel(work, 10)
    ranges = []
    runtime.parallel(lambda start, stop: ranges.append((start, stop)), 10)
    assert sorted(ranges) == [(0, 5), (5, 10)]


def test_nested_parallel_runs_its_ranges_in_the_calling_thread(two_threads):
    inner = []

    def outer(start, stop):
        me = threading.get_ident()
        runtime.parallel(lambda a, b: inner.append((start, a, b, threading.get_ident() == me)),
                         4)
    runtime.parallel(outer, 2)
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
    assert interrupted_while(lambda wait: runtime.parallel(
        lambda start, stop: start and wait(), 2)) == [True]
    finished = []
    runtime.parallel(lambda start, stop: start and (time.sleep(0.1), finished.append(start)), 2)
    assert finished == [1]  # joined this call, not the interrupted one


def test_ctrl_c_while_waiting_for_deferred_tasks_waits_for_them(two_threads):
    def deferred(wait):
        with runtime.deferring():
            assert runtime.defer(wait)
    assert interrupted_while(deferred) == [True]


needs_fp_modes = pytest.mark.skipif(runtime.fpmode._fp_modes is None,
                                    reason="denormal flushing needs glibc's fesetmode on x86-64")


def half_of_tiny():
    """Half of float32 1e-38: a denormal, or 0 where denormals are flushed."""
    return float((np.full(4, 1e-38, np.float32) * np.float32(0.5))[0])


@needs_fp_modes
def test_flush_denormals_inside_passes_only(two_threads):
    assert half_of_tiny() > 0
    with runtime.flush_denormals():
        assert half_of_tiny() == 0
        with runtime.flush_denormals():
            assert half_of_tiny() == 0
        assert half_of_tiny() == 0  # still inside the outer one
        seen = {}
        runtime.parallel(lambda start, stop: seen.update({start: half_of_tiny()}), 2)
        assert seen == {0: 0.0, 1: 0.0}  # the pool's thread follows its caller
        with runtime.deferring():
            runtime.defer(lambda: seen.update({"deferred": half_of_tiny()}))
        assert seen["deferred"] == 0
    assert half_of_tiny() > 0
    seen.clear()
    runtime.parallel(lambda start, stop: seen.update({start: half_of_tiny()}), 2)
    assert seen[0] > 0 and seen[1] > 0  # and back again outside


@needs_fp_modes
def test_flush_denormals_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(runtime.fpmode, "_flush_enabled", True)
    runtime.set_flush_denormals(False)
    with runtime.flush_denormals():
        assert half_of_tiny() > 0
    runtime.set_flush_denormals(True)
    with runtime.flush_denormals():
        assert half_of_tiny() == 0


@needs_fp_modes
def test_a_net_pass_flushes_and_leaves_the_caller_as_it_was():
    """A forward whose products are denormal gives zeros; the caller's mode is unchanged."""
    param = text_format.Parse("""
        layer { name: "data" type: "Input" top: "data"
                input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 2
                  weight_filler { type: "constant" value: 0.5 } } }""", pb.NetParameter())
    net = Net(param, phase=pb.TEST)
    net.blobs["data"].data[...] = 1e-38
    net.forward()
    assert np.all(net.blobs["ip"].data == 0)  # 3 × 0.5e-38: each product flushed
    assert half_of_tiny() > 0


def test_compiled_kernels_follow_the_setting_and_the_environment():
    import subprocess
    import sys
    previous = runtime.set_compiled_kernels(False)
    try:
        assert not runtime.compiled_kernels()
        runtime.set_compiled_kernels(True)
        assert runtime.compiled_kernels() == bool(runtime.compiled._numba_module())
    finally:
        runtime.set_compiled_kernels(previous)
    code = "from caffelite import runtime; print(runtime.compiled_kernels())"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "CAFFELITE_NUMBA": "0"}, check=True)
    assert off.stdout.strip() == "False"


def test_a_kernel_runs_its_function_compiled_and_on_two_threads(two_threads):
    pytest.importorskip("numba", reason="Numba not installed: no compiled kernels")

    def fill(out, value):
        for i in range(out.size):
            out[i] = value + i
    kernel = runtime.Kernel(fill)
    out = np.zeros(10)
    runtime.parallel(lambda start, stop: kernel(out[start:stop], float(start)), 10)
    np.testing.assert_array_equal(out, np.arange(10.0))
    assert kernel.compiled is not None and kernel.__name__ == "fill"
