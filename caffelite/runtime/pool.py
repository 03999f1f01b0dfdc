"""Array-module indirection (NumPy now, CuPy later) and the CPU thread settings."""
import _thread
import ctypes
import os
import platform
import sys
import threading

import numpy as np

try:  # an accelerator is optional; nothing else in the package imports it
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None


def get_array_module(*arrays):
    """numpy, or cupy when any argument is a CuPy array (Chainer's rule)."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def to_numpy(array):
    """A host NumPy array for any backend array (no copy for NumPy input)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


# -- compiled kernels -----------------------------------------------------------------------
# Loops NumPy can only run as many passes over memory (MAX pooling: about twenty) run as one
# pass when Numba is installed (the `fast` extra): a Kernel compiles a plain Python function on
# its first call, without the GIL, so the batch-splitting threads run it on every core.
# Without Numba, or with CAFFELITE_NUMBA=0 or set_compiled_kernels(False), layers keep their
# NumPy code; both give the same results (the tests run both).
_numba = None  # the module once imported, False when absent


def _numba_module():
    global _numba
    if _numba is None:
        try:
            import numba
            _numba = numba
        except Exception:  # not installed, or it does not load on this Python
            _numba = False
    return _numba


_compiled_kernels = os.environ.get("CAFFELITE_NUMBA", "1") != "0"


def compiled_kernels():
    """Whether layers run their compiled kernels (Numba installed and not turned off)."""
    return _compiled_kernels and bool(_numba_module())


def compiled_for(array):
    """Whether a layer runs its compiled kernels on this array (a NumPy one; not a device's)."""
    return isinstance(array, np.ndarray) and compiled_kernels()


def set_compiled_kernels(enabled):
    """Turn the compiled kernels on or off (process-wide); returns the previous setting."""
    global _compiled_kernels
    previous, _compiled_kernels = _compiled_kernels, bool(enabled)
    return previous


class Kernel:
    """A plain Python loop nest compiled by Numba on its first call (no GIL, no bounds
    checks, cached on disk). Call it only where compiled_kernels() holds."""

    def __init__(self, function):
        self.function, self.compiled = function, None
        self._lock = threading.Lock()
        self.__doc__, self.__name__ = function.__doc__, function.__name__

    def __call__(self, *args):
        if self.compiled is None:
            with self._lock:  # two threads' first calls compile once
                if self.compiled is None:
                    self.compiled = _numba_module().njit(
                        nogil=True, cache=True, boundscheck=False)(self.function)
        return self.compiled(*args)


# -- BLAS threads ---------------------------------------------------------------------------
# NumPy's OpenBLAS has no Python API for its thread count; its C entry points are called
# directly (the names differ between NumPy's bundled scipy-openblas and a system OpenBLAS).
_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                 "openblas_set_num_threads64_", "openblas_set_num_threads")
_blas = None


def _blas_functions():
    """(set, get) of the OpenBLAS NumPy loaded, or (None, None)."""
    global _blas
    if _blas is None:
        _blas = (None, None)
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        except OSError:  # not Linux: leave BLAS threads alone
            paths = set()
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in _BLAS_SETTERS:
                if hasattr(lib, name):
                    get = getattr(lib, name.replace("set_", "get_"), None)
                    _blas = (getattr(lib, name), get)
                    break
            if _blas[0] is not None:
                break
    return _blas


def blas_threads():
    """The thread count of NumPy's OpenBLAS, or None when it cannot be read."""
    _, get = _blas_functions()
    return int(get()) if get is not None else None


def set_blas_threads(count):
    """Set NumPy's OpenBLAS thread count (process-wide); False when it cannot be set."""
    setter, _ = _blas_functions()
    if setter is None:
        return False
    setter(int(count))
    return True


# -- denormals ------------------------------------------------------------------------------
# Float32 values below 1.2e-38 (denormals) cost x86 cores a microcode assist per operation,
# about 100x a normal one. Caffe's initial weights are small (CIFAR-10 quick's conv1 has
# std 1e-4), so early in training the DFT layers' GEMMs make denormal partial products: their
# weight gradient took 8 instead of 3 ms. Inside net passes and solver updates caffelite sets
# the thread's flush-to-zero and denormals-are-zero bits (as TensorFlow does in its compute
# threads): a denormal becomes 0, an absolute change below 1.2e-38.
# CAFFELITE_FLUSH_DENORMALS=0 or set_flush_denormals(False) turns it off.
_FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)


class _FpMode(ctypes.Structure):
    """glibc's femode_t on x86-64."""
    _fields_ = [("control_word", ctypes.c_ushort), ("reserved", ctypes.c_ushort),
                ("mxcsr", ctypes.c_uint)]


def _load_fp_modes():
    """(fegetmode, fesetmode) of glibc's libm on x86-64 Linux, else None (no flushing)."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libm = ctypes.CDLL("libm.so.6")
        return libm.fegetmode, libm.fesetmode
    except (OSError, AttributeError):  # musl, or a glibc before 2.25
        return None


_fp_modes = _load_fp_modes()
_flush_enabled = os.environ.get("CAFFELITE_FLUSH_DENORMALS", "1") != "0"
_fp_local = threading.local()  # per thread: .depth of flush_denormals, .mode saved at depth 0


def set_flush_denormals(enabled):
    """Whether net passes and solver updates flush denormals to zero (default on)."""
    global _flush_enabled
    _flush_enabled = bool(enabled)


def _set_thread_flush(flush):
    """Set or clear this thread's FTZ/DAZ bits; returns the previous mode (an _FpMode)."""
    get, put = _fp_modes
    mode = _FpMode()
    get(ctypes.byref(mode))
    previous = _FpMode(mode.control_word, mode.reserved, mode.mxcsr)
    mode.mxcsr = (mode.mxcsr | _FTZ_DAZ) if flush else (mode.mxcsr & ~_FTZ_DAZ)
    put(ctypes.byref(mode))
    return previous


def flushing():
    """Whether this thread is inside flush_denormals with flushing on."""
    return getattr(_fp_local, "mode", None) is not None


class flush_denormals:
    """Context (re-entrant, per thread): flush denormals to zero in this thread while inside;
    the thread's previous floating-point mode comes back on the way out. The pool's threads
    follow the mode of the thread that hands them work."""

    def __enter__(self):
        depth = getattr(_fp_local, "depth", 0)
        if depth == 0:
            _fp_local.mode = (_set_thread_flush(True) if _flush_enabled and _fp_modes
                              else None)
        _fp_local.depth = depth + 1
        return self

    def __exit__(self, *exc):
        _fp_local.depth -= 1
        if _fp_local.depth == 0 and _fp_local.mode is not None:
            _fp_modes[1](ctypes.byref(_fp_local.mode))
            _fp_local.mode = None


def _follow_flush(thread, flush):
    """In a pool thread: take the submitting thread's flush setting (written on change)."""
    if _fp_modes and thread.flushing_now != flush:
        _set_thread_flush(flush)
        thread.flushing_now = flush


def _wait_out(wait):
    """wait() to its end even through a Ctrl-C, which is raised afterwards: a pool thread's
    call must not outlive the pass that handed it over."""
    interrupted = None
    while True:
        try:
            wait()
            break
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


# -- the batch-splitting thread pool --------------------------------------------------------
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
                _follow_flush(self, self._flush)
                self._call()
            except BaseException as exc:  # re-raised in the submitting thread
                self._error = exc
            self._done.release()

    def submit(self, call, flush=False):
        self._call, self._flush, self._error = call, flush, None
        self._go.release()

    def join_call(self):
        _wait_out(self._done.acquire)
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
    threads = min(_num_threads, count // max(1, min_items))
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


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = None


class single_blas_thread:
    """Context (re-entrant): OpenBLAS on one thread while caffelite runs layers, restored on
    the way out. caffelite's own thread count decides how many cores a pass uses: OpenBLAS's
    idle threads spin for a while after each call and would take the cores our threads need
    (or, with one caffelite thread, the core another process needs)."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                _blas_saved = blas_threads()
                if _blas_saved not in (None, 1):
                    set_blas_threads(1)
            _blas_depth += 1
        return self

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0 and _blas_saved not in (None, 1):
                set_blas_threads(_blas_saved)


# GEMMs are split among the threads when they have at least this many multiply-adds.
MATMUL_MIN_WORK = 1 << 21


def matmul(a, b, out, accumulate=False):
    """out = a @ b (or out += a @ b) for 2-D operands, the longer side of out split among the
    threads: each part is one BLAS call that runs without the GIL, so two cores give ~2x."""
    xp = get_array_module(a)
    rows, cols = out.shape
    work = rows * cols * a.shape[1]
    if _num_threads <= 1 or work < MATMUL_MIN_WORK or xp is not np:
        if accumulate:
            out += a @ b
        else:
            xp.matmul(a, b, out=out)
        return out
    by_rows = rows >= cols

    def part(start, stop):
        lhs, rhs = (a[start:stop], b) if by_rows else (a, b[:, start:stop])
        target = out[start:stop] if by_rows else out[:, start:stop]
        if accumulate:
            target += lhs @ rhs
        else:
            np.matmul(lhs, rhs, out=target)
    parallel(part, rows if by_rows else cols, min_items=16)
    return out


def stacked_matmul(a, b, out):
    """out[i] = a[i] @ b[i] (a or b may be one 2-D matrix for all i), the stack split among
    the threads: one np.matmul call each, so the GIL is released for the whole part."""
    xp = get_array_module(b)
    count = out.shape[0]
    work = out.size * (a.shape[-1] if a.ndim else 1)
    if _num_threads <= 1 or work < MATMUL_MIN_WORK or xp is not np:
        return xp.matmul(a, b, out=out)

    def part(start, stop):
        lhs = a[start:stop] if a.ndim == 3 else a
        rhs = b[start:stop] if b.ndim == 3 else b
        np.matmul(lhs, rhs, out=out[start:stop])
    parallel(part, count)
    return out


# -- deferred parameter gradients -----------------------------------------------------------
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
                _follow_flush(self, flush)
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
            _wait_out(lambda: self._ready.wait_for(lambda: not self._tasks))
        if self._error is not None:
            error, self._error = self._error, None
            raise error


_deferred = None
_deferring = threading.local()


def defer(task):
    """Run task() now (False), or on the gradient thread inside a `deferring()` pass with more
    than one thread (True)."""
    global _deferred
    if not getattr(_deferring, "depth", 0) or _num_threads <= 1:
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
