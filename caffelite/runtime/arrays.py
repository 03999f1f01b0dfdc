"""The array module: NumPy now, CuPy when a device array comes in (Chainer's rule)."""
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
