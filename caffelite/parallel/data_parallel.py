"""Synchronous data parallelism with Caffe's semantics, as a solver callback.

Every rank builds the same nets and reads its own share of each global batch (data/shard.py).
`DataParallel(solver).attach()` makes rank 0's weights, solver history, counters, data
positions and random state every rank's, then, each iteration, after the backward passes:
one allreduce of a fused buffer [every gradient | loss | pending actions | train outputs]
divided by N, so every rank applies the same update from the global mean gradient and all
ranks hold identical weights and history at every iteration. Test nets are split the same
way (each rank tests its share of every global test batch) and their sums are averaged.

Signals: each rank's pending action (stop/snapshot) travels in the next gradient allreduce,
and the solver gets the agreed one after that update, so every rank stops at the same
iteration (one iteration after the signal; a signal during a test acts after the test).
Rank 0 alone writes snapshots.
"""
import logging
import os
import time

import numpy as np

from ..data.shard import set_shard, shard
from ..runtime import set_num_threads
from ..solvers import sidecar
from .mpi import world as find_world
from .sharded_rng import shard_net_streams

logger = logging.getLogger("caffelite")

ACTION_SLOTS = ("stop", "snapshot")
# Train net outputs up to this many values travel with the gradients (loss, accuracy), so a
# display shows their global mean.
MAX_OUTPUT_VALUES = 256
THREAD_VARIABLES = ("CAFFELITE_NUM_THREADS", "OMP_NUM_THREADS")


def init(world=None):
    """Find the MPI world and make this process read its share of every batch; call it before
    building nets (a data layer may look at its share in setup). Without
    CAFFELITE_NUM_THREADS/OMP_NUM_THREADS, the ranks on a machine share its cores. Returns
    the World."""
    world = world or find_world()
    set_shard(world.rank, world.size)
    if world.size > 1:
        share_cores(world)
    return world


def share_cores(world):
    """Each rank's thread count, unless set by the environment: its allowed cores (affinity)
    divided among the ranks on this machine allowed the same cores. A launcher that binds
    each rank to its own cores gives each all of its own; unbound ranks (or ranks in one
    cgroup) share theirs."""
    own = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
    masks = world.local_allgather(own)  # collective: every rank calls it
    if any(os.environ.get(name, "").strip() for name in THREAD_VARIABLES):
        return
    cores = len(own) if own is not None else (os.cpu_count() or 1)
    set_num_threads(max(1, cores // masks.count(own)))


class DataParallel:
    """Solver callback averaging gradients, losses and test results over the MPI world
    (pycaffe's NCCL object for MPI): `DataParallel(solver).attach()` after building the
    solver on every rank (after `init()`), then train as usual."""

    def __init__(self, solver, world=None):
        self.solver = solver
        self.world = world or find_world()
        self.params = list(solver.learnable_params)
        if not all(p.diff.flags.c_contiguous for p in self.params):
            raise ValueError("DataParallel needs contiguous parameter diffs")
        dtype = self.params[0].diff.dtype if self.params else np.float32
        self.offsets = np.cumsum([0] + [p.diff.size for p in self.params])
        net = solver.net
        self.outputs = [net.blobs[name] for name in net.outputs
                        if net.blobs[name].data.size <= MAX_OUTPUT_VALUES]
        extra = 1 + len(ACTION_SLOTS) + sum(blob.data.size for blob in self.outputs)
        self.buffer = np.zeros(int(self.offsets[-1]) + extra, dtype=dtype)
        self.pending = set()  # this rank's actions (its signals) not yet voted on
        self.agreed = "none"
        self.allreduce_seconds = []  # per iteration: pack, allreduce, unpack

    # -- setup ----------------------------------------------------------------------------
    def attach(self, resume=None):
        """Rank 0 restores `resume` (a .solverstate) if given; every rank then takes rank 0's
        state, shards its random streams and starts averaging. Returns self."""
        world, solver = self.world, self.solver
        if shard() != (world.rank, world.size):
            set_shard(world.rank, world.size)
        solver.writes_snapshots = world.is_root
        if resume is not None and world.is_root:
            logger.info("Restoring previous solver status from %s", resume)
            solver.restore(resume)
        self.bcast()
        for net in [solver.net] + list(solver.test_nets):
            shard_net_streams(net, world.rank, world.size)
        solver.add_callback(self)
        if world.size > 1:
            logger.info("Data-parallel training on %d MPI ranks: global batch = %d x the "
                        "batch_size of each data layer", world.size, world.size)
        return self

    def bcast(self):
        """Make rank 0's weights (every param blob of the train net), history, counters,
        data positions and random state every rank's (pycaffe's NCCL.bcast)."""
        world, solver = self.world, self.solver
        for blobs in solver.net.params.values():
            for blob in blobs:
                _bcast_inplace(world, blob.data, "the weight broadcast")
        for history in solver.history:
            _bcast_inplace(world, history, "the solver history broadcast")
        state = world.bcast_object(_solver_record(solver) if world.is_root else None,
                                   "the solver state broadcast")
        _load_solver_record(solver, state)

    # -- the solver's hooks ---------------------------------------------------------------
    def on_gradients(self, loss):
        """Average every gradient, the loss and the train outputs over the ranks; agree on
        the pending action. Returns the global mean loss."""
        started = time.perf_counter()
        buf, offsets, count = self.buffer, self.offsets, self.world.size
        for k, param in enumerate(self.params):
            buf[offsets[k]:offsets[k + 1]] = param.diff.reshape(-1)
        at = int(offsets[-1])
        buf[at] = loss
        buf[at + 1:at + 1 + len(ACTION_SLOTS)] = [slot in self.pending for slot in ACTION_SLOTS]
        self.pending.clear()
        at += 1 + len(ACTION_SLOTS)
        for blob in self.outputs:
            buf[at:at + blob.data.size] = blob.data.reshape(-1)
            at += blob.data.size
        self.world.allreduce_sum(buf, "the gradient allreduce")
        for k, param in enumerate(self.params):
            np.divide(buf[offsets[k]:offsets[k + 1]], count, out=param.diff.reshape(-1))
        at = int(offsets[-1])
        loss = float(buf[at]) / count
        votes = buf[at + 1:at + 1 + len(ACTION_SLOTS)]
        self.agreed = next((slot for slot, n in zip(ACTION_SLOTS, votes) if n > 0), "none")
        at += 1 + len(ACTION_SLOTS)
        for blob in self.outputs:  # backward is done: the outputs are only read for display
            np.divide(buf[at:at + blob.data.size], count, out=blob.data.reshape(-1))
            at += blob.data.size
        self.allreduce_seconds.append(time.perf_counter() - started)
        return loss

    def on_outputs(self, value):
        """The mean over the ranks of a float, an array, or a tuple/dict of them."""
        leaves = []
        _flatten(value, leaves)
        if self.world.size == 1 or not leaves:
            return value
        flat = np.concatenate([np.asarray(leaf, dtype=np.float64).ravel() for leaf in leaves])
        self.world.allreduce_sum(flat, "the test result allreduce")
        flat /= self.world.size
        return _rebuild(value, iter(_split(flat, leaves)))

    def on_action(self, action):
        """This rank's action (from its signals) waits for the next gradient allreduce, where
        the ranks vote; the solver gets the agreed action once, after that iteration's update,
        so every rank stops or snapshots at the same iteration."""
        if action != "none":
            self.pending.add(action)
        agreed, self.agreed = self.agreed, "none"
        return agreed


def _bcast_inplace(world, array, what):
    if array.flags.c_contiguous:
        world.bcast_array(array, what)
    else:
        array[...] = world.bcast_array(np.ascontiguousarray(array), what)


def _solver_record(solver):
    return {"iter": solver.iter, "current_step": solver.current_step,
            "losses": list(solver.losses), "smoothed_loss": solver.smoothed_loss,
            "loss_start_iter": solver._loss_start_iter, "keep_losses": solver._keep_losses,
            "train_net": sidecar.net_record(solver.net),
            "test_nets": [sidecar.net_record(net) for net in solver.test_nets]}


def _load_solver_record(solver, record):
    solver.iter, solver.current_step = record["iter"], record["current_step"]
    solver.losses, solver.smoothed_loss = list(record["losses"]), record["smoothed_loss"]
    solver._loss_start_iter = record["loss_start_iter"]
    solver._keep_losses = record["keep_losses"]
    for net, entry in zip([solver.net] + list(solver.test_nets),
                          [record["train_net"]] + list(record["test_nets"])):
        net.load_layer_states(entry["layer_states"])
        sidecar.load_rng_states(net, entry["rng"])


def _flatten(value, leaves):
    if isinstance(value, dict):
        for item in value.values():
            _flatten(item, leaves)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _flatten(item, leaves)
    else:
        leaves.append(value)


def _split(flat, leaves):
    at = 0
    for leaf in leaves:
        size = int(np.size(leaf))
        part = flat[at:at + size]
        at += size
        yield float(part[0]) if np.ndim(leaf) == 0 else part.reshape(np.shape(leaf)).copy()


def _rebuild(value, parts):
    if isinstance(value, dict):
        return type(value)((key, _rebuild(item, parts)) for key, item in value.items())
    if isinstance(value, (tuple, list)):
        return type(value)(_rebuild(item, parts) for item in value)
    return next(parts)
