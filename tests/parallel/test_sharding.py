"""In one process: the Data layer's share of a global batch, the sharded random streams, and
finding the MPI world (no mpiexec needed)."""
import subprocess
import sys

import numpy as np
import pytest

from caffelite import TRAIN, Net
from caffelite.data.shard import set_shard, shard
from caffelite.parallel import World
from caffelite.parallel.data_parallel import _flatten, _rebuild, _split
from caffelite.parallel.mpi import launched_size
from caffelite.parallel.sharded_rng import ShardedGenerator, shard_net_streams
from tests.parallel.mpirun import environment

NET = """
name: "shard"
layer {{ name: "d" type: "Data" top: "data" top: "label"
  transform_param {{ crop_size: 3 mirror: true }}
  data_param {{ source: "{source}" batch_size: {batch} }} }}
layer {{ name: "drop" type: "Dropout" bottom: "data" top: "dropped"
  dropout_param {{ dropout_ratio: 0.5 }} }}
"""


@pytest.fixture
def restore_shard():
    yield
    set_shard(0, 1)


def batches(tmp_path, batch, rank, count, forwards):
    """(data, label, dropped) of `forwards` TRAIN forwards as rank `rank` of `count` sees them."""
    path = tmp_path / f"net_{batch}.prototxt"
    path.write_text(NET.format(source=tmp_path / "set.npz", batch=batch))
    set_shard(rank, count)
    net = Net(str(path), TRAIN, rng=np.random.default_rng(5))
    shard_net_streams(net, rank, count)
    out = []
    for _ in range(forwards):
        net.forward()
        out.append([net.blobs[name].data.copy() for name in ("data", "label", "dropped")])
    return out, net


@pytest.mark.parametrize("count", [2, 3])
def test_ranks_read_and_draw_what_one_process_with_the_global_batch_does(tmp_path, count,
                                                                          restore_shard):
    # 11 records, batch 2 per rank: the global batches wrap around the set at odd places.
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", images=rng.integers(0, 255, (11, 2, 5, 5), dtype=np.uint8),
             labels=np.arange(11))
    whole, one = batches(tmp_path, 2 * count, 0, 1, 7)
    parts = [batches(tmp_path, 2, r, count, 7) for r in range(count)]
    for step in range(7):
        for k in range(3):  # the images (cropped, mirrored), labels, dropout masks
            joined = np.concatenate([part[0][step][k] for part in parts])
            np.testing.assert_array_equal(joined, whole[step][k])
    for _, net in parts:  # every rank's cursor and random state is the one process's
        assert net.layer_states() == one.layer_states()
        assert net.rng.bit_generator.state == one.rng.bit_generator.state


def test_sharded_generator_keeps_this_ranks_rows_of_the_whole_draw():
    for method, args in [("random", ((4, 3),)), ("integers", (0, 9, 5)),
                         ("normal", (0.0, 1.0, (4, 2))), ("standard_normal", ((3,),))]:
        whole = getattr(np.random.default_rng(1), method)(*args[:-1], _times(args[-1], 3))
        for rank in range(3):
            sharded = ShardedGenerator(np.random.default_rng(1), rank, 3)
            part = getattr(sharded, method)(*args)
            rows = len(part)
            np.testing.assert_array_equal(part, whole[rank * rows:(rank + 1) * rows])
    # keyword size, a dtype, and draws without a size (the same on every rank)
    whole = np.random.default_rng(2).random(size=(6, 2), dtype=np.float32)
    part = ShardedGenerator(np.random.default_rng(2), 1, 2).random(size=(3, 2),
                                                                   dtype=np.float32)
    np.testing.assert_array_equal(part, whole[3:])
    assert ShardedGenerator(np.random.default_rng(3), 1, 2).random() == \
        np.random.default_rng(3).random()


def _times(size, count):
    size = (size,) if np.ndim(size) == 0 else tuple(size)
    return (size[0] * count,) + size[1:]


def test_launcher_environment_decides_whether_mpi_is_asked():
    assert launched_size({}) == 1
    assert launched_size({"PMI_SIZE": "1"}) == 1  # mpiexec -n 1: nothing to share
    assert launched_size({"PMI_SIZE": "4", "PMI_RANK": "2"}) == 4
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "8"}) == 8
    assert launched_size({"SLURM_STEP_NUM_TASKS": "16"}) == 16
    assert launched_size({"PMI_SIZE": "4", "CAFFELITE_MPI": "0"}) == 1
    assert launched_size({"CAFFELITE_MPI": "1"}) is None


def test_a_plain_process_never_imports_mpi4py():
    code = ("import sys, caffelite; print(caffelite.solver_count(), caffelite.solver_rank(), "
            "'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=environment(), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.split() == ["1", "0", "False"]


def test_one_process_world_is_plain(restore_shard):
    world = World()
    assert (world.rank, world.size, world.is_root) == (0, 1, True)
    array = np.arange(3.0)
    assert world.allreduce_sum(array) is array and array.tolist() == [0, 1, 2]
    assert world.bcast_object({"a": 1}) == {"a": 1}
    with world.fail_together():  # no effect outside MPI
        pass
    assert shard() == (0, 1)


def test_test_results_keep_their_structure_through_the_reduction():
    value = (2.5, {"accuracy": np.array(0.75), "scores": np.array([1.0, 2.0])})
    leaves = []
    _flatten(value, leaves)
    flat = np.concatenate([np.asarray(leaf, dtype=np.float64).ravel() for leaf in leaves])
    loss, sums = _rebuild(value, iter(_split(flat, leaves)))
    assert loss == 2.5 and sums["accuracy"] == 0.75
    np.testing.assert_array_equal(sums["scores"], [1.0, 2.0])


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    from caffelite.parallel.mpi import ParallelError, _find_world

    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    with pytest.raises(ParallelError, match=r'pip install "caffelite\[mpi\]"'):
        _find_world()


class _FakeWorld:
    """Four ranks on this machine with the given affinity masks."""

    def __init__(self, masks):
        self.masks = masks

    def local_allgather(self, value):
        assert value == self.masks[0]
        return self.masks


ALL = tuple(range(16))


@pytest.mark.parametrize("env, masks, expected", [
    ({}, [ALL] * 4, 4),  # unbound: 16 cores shared by 4 ranks
    ({}, [(0, 1), (2, 3), (4, 5), (6, 7)], 2),  # bound by the launcher to 2 cores each
    ({}, [(0, 1)] * 4, 1),  # more ranks than cores: one thread each
    ({"CAFFELITE_NUM_THREADS": "3"}, [ALL] * 4, None),  # the environment decides
])
def test_ranks_share_the_machines_cores(monkeypatch, env, masks, expected):
    from caffelite import runtime
    from caffelite.parallel import data_parallel

    for name in data_parallel.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(data_parallel.os, "sched_getaffinity", lambda pid: set(masks[0]),
                        raising=False)
    before = runtime.num_threads()
    try:
        data_parallel.share_cores(_FakeWorld(masks))
        assert runtime.num_threads() == (before if expected is None else expected)
    finally:
        runtime.set_num_threads(before)
