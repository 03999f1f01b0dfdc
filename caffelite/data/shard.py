"""Which share of every global batch this process reads (data-parallel training).

One process reads whole batches: (rank, count) = (0, 1). Under N data-parallel processes each
data layer still walks the same global record order with the same cursor on every rank; a
global batch is N * batch_size consecutive records, and rank r takes the r-th run of
batch_size of them. So N ranks with batch_size B read together exactly the records one process
with batch_size N * B reads, and the cursor (saved in snapshots) is the same on every rank.
"""
_rank, _count = 0, 1


def set_shard(rank, count):
    """Make this process read the rank-th share of every global batch of `count` shares."""
    global _rank, _count
    if not 0 <= int(rank) < int(count):
        raise ValueError(f"shard rank {rank} is not in [0, {count})")
    _rank, _count = int(rank), int(count)


def shard():
    """(rank, count) of this process; (0, 1) outside data-parallel training."""
    return _rank, _count


def batch_offsets(batch_size):
    """(first, step): this rank's first record of a global batch, counted from the cursor,
    and how far the cursor moves per global batch."""
    return _rank * batch_size, _count * batch_size
