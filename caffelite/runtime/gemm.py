"""GEMMs split among the threads: each part is one BLAS call that runs without the GIL."""
import numpy as np

from .arrays import get_array_module
from .pool import parallel
from .threads import num_threads

# GEMMs are split among the threads when they have at least this many multiply-adds.
MATMUL_MIN_WORK = 1 << 21


def matmul(a, b, out, accumulate=False):
    """out = a @ b (or out += a @ b) for 2-D operands, the longer side of out split among the
    threads: each part is one BLAS call that runs without the GIL, so two cores give ~2x."""
    xp = get_array_module(a)
    rows, cols = out.shape
    work = rows * cols * a.shape[1]
    if num_threads() <= 1 or work < MATMUL_MIN_WORK or xp is not np:
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
    if num_threads() <= 1 or work < MATMUL_MIN_WORK or xp is not np:
        return xp.matmul(a, b, out=out)

    def part(start, stop):
        lhs = a[start:stop] if a.ndim == 3 else a
        rhs = b[start:stop] if b.ndim == 3 else b
        np.matmul(lhs, rhs, out=out[start:stop])
    parallel(part, count)
    return out
