"""The compiled-kernel switch: Numba-compiled loop nests (the `fast` extra) or NumPy."""
import os
import threading

import numpy as np

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
