"""NumPy's OpenBLAS thread count, read and set through its C entry points."""
import ctypes
import sys
import threading

from .threads import Blocks

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


_blas_lock = threading.Lock()
_blas_inside = set()  # threads inside a block
_blas_blocks = Blocks()  # each thread's blocks, by frame (a Ctrl-C may skip an __exit__)
_NOT_SAVED = object()
_blas_saved = _NOT_SAVED  # the count to restore; forgotten only once it is back


class single_blas_thread:
    """Context (re-entrant): OpenBLAS on one thread while caffelite runs layers, restored on
    the way out. caffelite's own thread count decides how many cores a pass uses: OpenBLAS's
    idle threads spin for a while after each call and would take the cores our threads need
    (or, with one caffelite thread, the core another process needs)."""

    threads_inside = _blas_inside

    def __enter__(self):
        global _blas_saved
        self._frame = sys._getframe(1)
        with _blas_lock:
            if _blas_blocks.enter(self._frame):
                _blas_inside.add(threading.get_ident())
                if _blas_saved is _NOT_SAVED:
                    _blas_saved = blas_threads()
                if _blas_saved not in (None, 1):
                    set_blas_threads(1)
        return self

    def __exit__(self, *exc):
        global _blas_saved
        with _blas_lock:
            if _blas_blocks.exit(self._frame):
                _blas_inside.discard(threading.get_ident())
                if not _blas_inside and _blas_saved is not _NOT_SAVED:
                    if _blas_saved not in (None, 1):
                        set_blas_threads(_blas_saved)
                    _blas_saved = _NOT_SAVED
