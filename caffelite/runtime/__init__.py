"""Where layer math runs: the array module, compiled kernels, threads, BLAS and FP modes.

Layers import what they need from here (`from ..runtime import parallel`); each concern
lives in its own module:

- arrays:   get_array_module / to_numpy (NumPy now, CuPy when a device array comes in)
- compiled: the Numba switch (compiled_kernels, compiled_for, Kernel)
- threads:  the thread count (num_threads, set_num_threads) and waits that survive Ctrl-C
- pool:     the batch-splitting pool (parallel, elementwise)
- gemm:     GEMMs split among the threads (matmul, stacked_matmul)
- deferred: weight-gradient GEMMs on a second thread during backward (defer, deferring)
- blas:     OpenBLAS's own thread count (blas_threads, single_blas_thread)
- fpmode:   flushing denormals to zero (flush_denormals, set_flush_denormals)
"""
from .arrays import get_array_module, to_numpy
from .blas import blas_threads, set_blas_threads, single_blas_thread
from .compiled import Kernel, compiled_for, compiled_kernels, set_compiled_kernels
from .deferred import defer, deferred_busy, deferring
from .fpmode import flush_denormals, flushing, set_flush_denormals
from .gemm import matmul, stacked_matmul
from .pool import elementwise, parallel
from .threads import num_threads, set_num_threads

__all__ = ["get_array_module", "to_numpy", "blas_threads", "set_blas_threads",
           "single_blas_thread", "Kernel", "compiled_for", "compiled_kernels",
           "set_compiled_kernels", "defer", "deferred_busy", "deferring", "flush_denormals",
           "flushing", "set_flush_denormals", "matmul", "stacked_matmul", "elementwise",
           "parallel", "num_threads", "set_num_threads"]
