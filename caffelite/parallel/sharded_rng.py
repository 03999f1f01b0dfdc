"""Random streams under data parallelism: each rank draws what its rows of the global batch
would get in one process.

A net's layers draw per batch from the net's Generator: Data's crop offsets and mirror flips
(one value per image), Dropout's mask and stochastic pooling's thresholds (the batch's
shape), DummyData's refills. One process with batch N·B draws those arrays with N·B rows.
A ShardedGenerator, put in place of the net's Generator on each of N ranks, draws the whole
N·B-row array from the same stream state and keeps rows [rank·B, (rank+1)·B): the rank's
images get the same numbers as in one process, and every rank's stream stays in the same
state (so rank 0's snapshot holds every rank's random state). The price is N times the random
numbers per draw (a Dropout mask of 4096 units at N = 64 draws 64·4096 numbers an image).

Draws without a size (scalars) pass through unchanged, as one process makes them once. A
Python layer that keeps the Generator it was given at setup draws on its own stream, the
same on every rank, and is not matched with one process.
"""
import functools

import numpy as np

# The position of `size` among the positional arguments of the Generator methods layers use.
SIZE_POSITION = {"random": 0, "standard_normal": 0, "integers": 2, "uniform": 2, "normal": 2,
                 "binomial": 2, "standard_exponential": 0}


class ShardedGenerator:
    """A numpy Generator as rank `rank` of `count` sees it (see the module docstring); every
    other attribute (bit_generator, ...) is the wrapped Generator's."""

    def __init__(self, generator, rank, count):
        self.generator, self.rank, self.count = generator, int(rank), int(count)

    def __getattr__(self, name):
        attr = getattr(self.generator, name)
        if name not in SIZE_POSITION:
            return attr
        return functools.partial(self._draw, attr, SIZE_POSITION[name])

    def __repr__(self):
        return f"ShardedGenerator({self.generator!r}, rank={self.rank}, count={self.count})"

    def _draw(self, method, position, *args, **kwargs):
        args = list(args)
        if "size" in kwargs:
            size = kwargs["size"]
        elif len(args) > position:
            size = args[position]
        else:
            size = None
        if size is None or kwargs.get("out") is not None:
            return method(*args, **kwargs)
        shape = (int(size),) if np.ndim(size) == 0 else tuple(int(n) for n in size)
        if not shape:
            return method(*args, **kwargs)
        rows = shape[0]
        whole = (rows * self.count,) + shape[1:]
        if "size" in kwargs:
            kwargs["size"] = whole
        else:
            args[position] = whole
        return method(*args, **kwargs)[self.rank * rows:(self.rank + 1) * rows]


def shard_net_streams(net, rank, count):
    """Put a ShardedGenerator in place of the net's Generator, in the net and every layer
    (and data transformer) that holds it; returns it."""
    original = net.rng
    if isinstance(original, ShardedGenerator):
        return original
    sharded = ShardedGenerator(original, rank, count)
    net.rng = sharded
    for layer in net.layers:
        for owner in (layer, getattr(layer, "transformer", None)):
            if owner is not None and getattr(owner, "rng", None) is original:
                owner.rng = sharded
    return sharded
