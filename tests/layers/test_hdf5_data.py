"""HDF5Data: every top equals the rows h5py reads from the listed files, in Caffe's order
(batches across files, wrap-around, shuffle of files and rows), exact resume, data-parallel
shares, and clear errors for bad lists and files."""
import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.blob import Blob
from caffelite.data import shard
from caffelite.errors import NetError
from caffelite.layer import TEST, TRAIN
from caffelite.proto import caffelite_pb2 as pb
from tests.gradient_check import make_layer
from tests.resume_check import check_exact_resume

h5py = pytest.importorskip("h5py")


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, array in datasets.items():
            f.create_dataset(name, data=array)
    return path


def write_list(path, names):
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def read_h5(path, names):
    with h5py.File(path, "r") as f:
        return [f[name][()] for name in names]


def make(source, tops, batch, shuffle=False, phase=TRAIN, seed=5, extra=""):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    layer = make_layer(f'type: "HDF5Data" {top_text} hdf5_data_param {{ source: "{source}" '
                       f'batch_size: {batch} shuffle: {str(shuffle).lower()} }} {extra}',
                       phase=phase, dtype=np.float32, seed=seed)
    top = [Blob(dtype=np.float32) for _ in tops]
    layer.setup([], top)
    return layer, top


def batches(layer, top, count):
    out = []
    for _ in range(count):
        layer.forward([], top)
        out.append([blob.data.copy() for blob in top])
    return out


@pytest.fixture
def three_files(tmp_path):
    """Three files of 5, 3 and 4 rows; three tops of rank 5, 1 (integers) and 2."""
    rng = np.random.default_rng(0)
    paths = []
    for k, rows in enumerate((5, 3, 4)):
        paths.append(write_h5(tmp_path / f"part{k}.h5",
                              data=rng.standard_normal((rows, 2, 3, 1, 2)).astype(np.float32),
                              label=rng.integers(0, 100, rows).astype(np.int32),
                              extra=rng.standard_normal((rows, 7))))
    source = write_list(tmp_path / "list.txt", [p.name for p in paths])
    return source, paths


TOPS = ("data", "label", "extra")


def test_single_file_wraps_at_its_end(tmp_path):
    data = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    label = np.arange(7, dtype=np.float64) * 10
    write_h5(tmp_path / "a.h5", data=data, label=label)
    layer, top = make(write_list(tmp_path / "l.txt", ["a.h5"]), ("data", "label"), 3)
    assert [t.shape for t in top] == [(3, 3), (3,)]
    stored_data, stored_label = read_h5(tmp_path / "a.h5", ("data", "label"))
    for i, (d, lab) in enumerate(batches(layer, top, 5)):
        rows = np.arange(3 * i, 3 * i + 3) % 7
        np.testing.assert_array_equal(d, stored_data[rows])
        np.testing.assert_array_equal(lab, stored_label[rows].astype(np.float32))


def test_batches_span_files_and_the_list_wraps(three_files):
    source, paths = three_files
    layer, top = make(source, TOPS, 5)
    assert [t.shape for t in top] == [(5, 2, 3, 1, 2), (5,), (5, 7)]
    stored = [np.concatenate(parts) for parts in zip(*(read_h5(p, TOPS) for p in paths))]
    total = len(stored[0])  # 12 rows: 5 batches of 5 wrap the list twice
    for i, got in enumerate(batches(layer, top, 5)):
        rows = np.arange(5 * i, 5 * i + 5) % total
        for g, s in zip(got, stored):
            np.testing.assert_array_equal(g, s[rows].astype(np.float32))


def shuffled_stream(seed, paths, count):
    """The (file, row) pairs HDF5Data reads with shuffle, computed straight from Caffe's
    description with the layer's documented draws: file order at setup and each pass, row
    order at each load and each file end."""
    net_rng = np.random.default_rng(seed)
    rng = np.random.default_rng(int(net_rng.integers(2**63)))
    sizes = [len(read_h5(p, ("label",))[0]) for p in paths]
    order = np.arange(len(paths))
    rng.shuffle(order)
    index = 0
    rows = np.arange(sizes[order[0]])
    rng.shuffle(rows)  # at setup's load
    out = []
    while len(out) < count:
        out += [(order[index], r) for r in rows]
        index += 1
        if index == len(paths):
            index = 0
            rng.shuffle(order)
        rows = np.arange(sizes[order[index]])
        rng.shuffle(rows)  # at the load
        rng.shuffle(rows)  # and again at the end of the file before (Caffe does both)
    return out[:count]


def test_shuffle_follows_caffes_order_and_repeats_from_the_seed(three_files):
    source, paths = three_files
    stored = [read_h5(p, TOPS) for p in paths]
    layer, top = make(source, TOPS, 4, shuffle=True, seed=11)
    got = batches(layer, top, 9)  # 36 rows = 3 passes over the 12
    stream = shuffled_stream(11, paths, 36)
    for i, batch in enumerate(got):
        for j in range(3):
            expected = [stored[f][j][r] for f, r in stream[4 * i:4 * i + 4]]
            np.testing.assert_array_equal(batch[j], np.asarray(expected, np.float32))
    # each pass reads every row once, a file's rows together
    files = [f for f, _ in stream]
    for p in range(3):
        part = stream[12 * p:12 * p + 12]
        assert sorted(part) == sorted((f, r) for f in range(3)
                                      for r in range(len(stored[f][1])))
        changes = sum(a != b for a, b in zip(files[12 * p:12 * p + 11],
                                             files[12 * p + 1:12 * p + 12]))
        assert changes == 2
    again = batches(*make(source, TOPS, 4, shuffle=True, seed=11), 9)
    other = batches(*make(source, TOPS, 4, shuffle=True, seed=12), 9)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(got, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(got, other))


@pytest.mark.parametrize("shuffle", [False, True])
def test_state_resumes_the_same_rows(three_files, shuffle):
    source, _ = three_files
    straight = batches(*make(source, TOPS, 5, shuffle=shuffle, seed=3), 9)
    first, top = make(source, TOPS, 5, shuffle=shuffle, seed=3)
    batches(first, top, 4)
    state = first.get_state()
    resumed, top = make(source, TOPS, 5, shuffle=shuffle, seed=99)  # a different seed
    resumed.set_state(state)
    for a, b in zip(straight[4:], batches(resumed, top, 5)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_state_from_other_files_is_refused(three_files, tmp_path):
    source, paths = three_files
    layer, _ = make(source, TOPS, 2)
    state = layer.get_state()
    state["order"] = [0, 1]
    with pytest.raises(ValueError, match="does not fit the 3 files"):
        layer.set_state(state)


@pytest.mark.parametrize("shuffle", [False, True])
def test_data_parallel_shares_make_the_global_batch(three_files, shuffle):
    source, _ = three_files
    whole = batches(*make(source, TOPS, 6, shuffle=shuffle), 5)
    shares = []
    try:
        for rank in range(3):
            shard.set_shard(rank, 3)
            shares.append(batches(*make(source, TOPS, 2, shuffle=shuffle), 5))
    finally:
        shard.set_shard(0, 1)
    for i in range(5):
        for j in range(3):
            joined = np.concatenate([shares[rank][i][j] for rank in range(3)])
            np.testing.assert_array_equal(joined, whole[i][j])


def test_test_nets_read_whole_batches_under_data_parallel(three_files):
    source, _ = three_files
    alone = batches(*make(source, TOPS, 4, phase=TEST), 3)
    try:
        shard.set_shard(1, 2)
        shared = batches(*make(source, TOPS, 4, phase=TEST), 3)
    finally:
        shard.set_shard(0, 1)
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a[0], b[0])


def test_net_resolves_the_list_beside_the_prototxt(tmp_path, monkeypatch):
    sub = tmp_path / "data"
    sub.mkdir()
    data = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    write_h5(sub / "train.h5", data=data, label=np.arange(6.0))
    write_list(sub / "train.txt", ["train.h5"])  # relative to the list file
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label" '
        'hdf5_data_param { source: "data/train.txt" batch_size: 4 } }')
    monkeypatch.chdir(sub.parent.parent)
    from caffelite.net import Net

    net = Net(str(tmp_path / "net.prototxt"), phase=TRAIN)
    out = net.forward()
    np.testing.assert_array_equal(out["data"], data[:4])
    np.testing.assert_array_equal(out["label"], np.arange(4.0))


def test_listed_files_may_be_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    write_h5(tmp_path / "w.h5", data=np.ones((2, 3)))
    source = write_list(tmp_path / "lists" / "l.txt", ["w.h5"])  # Caffe's convention
    monkeypatch.chdir(tmp_path)
    _, top = make(source, ("data",), 2)
    assert top[0].shape == (2, 3)


# -- bad input --------------------------------------------------------------------------------
def test_missing_dataset_names_the_file_and_the_top(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)), labels=np.zeros(2))
    source = write_list(tmp_path / "l.txt", ["a.h5"])
    with pytest.raises(NetError, match=r"\(HDF5Data\): .*a\.h5 has no dataset 'label' .*"
                                       r"\['data', 'labels'\]"):
        make(source, ("data", "label"), 2)


def test_missing_or_empty_list(tmp_path):
    with pytest.raises(NetError, match=r"source .*nolist\.txt: no such list file"):
        make(tmp_path / "nolist.txt", ("data",), 2)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(NetError, match="empty.txt lists no .h5 files"):
        make(empty, ("data",), 2)


def test_listed_file_that_does_not_exist(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)))
    source = write_list(tmp_path / "l.txt", ["a.h5", "gone.h5"])
    with pytest.raises(NetError, match=r"l\.txt lists gone\.h5, which does not exist"):
        make(source, ("data",), 2)


def test_mismatched_row_counts(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((4, 3)), label=np.zeros(3))
    source = write_list(tmp_path / "l.txt", ["a.h5"])
    with pytest.raises(NetError, match=r"different row counts \('data' 4, 'label' 3\)"):
        make(source, ("data", "label"), 2)


def test_later_file_with_other_row_shape(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)))
    write_h5(tmp_path / "b.h5", data=np.zeros((2, 4)))
    layer, top = make(write_list(tmp_path / "l.txt", ["a.h5", "b.h5"]), ("data",), 3)
    with pytest.raises(NetError, match=r"b\.h5: dataset 'data' has rows of shape \(4,\); the "
                                       r"first file's were \(3,\)"):
        layer.forward([], top)


def test_not_an_hdf5_file_transform_and_batch_size(tmp_path):
    (tmp_path / "a.h5").write_text("not hdf5")
    source = write_list(tmp_path / "l.txt", ["a.h5"])
    with pytest.raises(NetError, match="a.h5 is not a readable HDF5 file"):
        make(source, ("data",), 2)
    write_h5(tmp_path / "b.h5", data=np.zeros((2, 3)), text=np.array([b"x", b"y"]))
    source = write_list(tmp_path / "m.txt", ["b.h5"])
    with pytest.raises(NetError, match="does not transform"):
        make(source, ("data",), 2, extra="transform_param { scale: 2 }")
    with pytest.raises(NetError, match="batch_size must be a positive"):
        make(source, ("data",), 0)
    with pytest.raises(NetError, match="dataset 'text' is .*numeric arrays"):
        make(source, ("text",), 2)


def test_missing_h5py_names_the_extra(three_files, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("no h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(NetError, match=r'pip install "caffelite\[hdf5\]"'):
        make(three_files[0], TOPS, 2)



@pytest.mark.timeout(120)
def test_solver_resume_is_bit_identical(three_files, tmp_path):
    """N iterations straight = K + snapshot + restore + N − K, on shuffled HDF5 data: the
    sidecar carries the file order, position and row order."""
    from caffelite.solvers import Solver
    from tests.solvers.nets import params_of, solver_param

    source, _ = three_files
    net_text = f"""
      layer {{ name: "h5" type: "HDF5Data" top: "extra" top: "label"
               hdf5_data_param {{ source: "{source}" batch_size: 5 shuffle: true }} }}
      layer {{ name: "ip" type: "InnerProduct" bottom: "extra" top: "ip"
               inner_product_param {{ num_output: 1 weight_filler {{ type: "gaussian" }} }} }}
      layer {{ name: "flat" type: "Flatten" bottom: "ip" top: "pred"
               flatten_param {{ axis: 0 }} }}
      layer {{ name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "label" top: "loss" }}
    """
    net = text_format.Parse(net_text, pb.NetParameter())

    def make_solver(name):
        return Solver(solver_param(net, base_lr=1e-4, momentum=0.9, max_iter=7,
                                   snapshot_prefix=str(tmp_path / name / "s")))

    straight, first, _ = check_exact_resume(make_solver, total=7, first=3)
    assert not np.array_equal(params_of(first)[0], params_of(straight)[0])


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path):
    from click.testing import CliRunner

    from caffelite.cli import main

    write_h5(tmp_path / "a.h5", data=np.zeros((4, 3), np.float32))
    write_list(tmp_path / "l.txt", ["a.h5"])
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "h" type: "HDF5Data" top: "data" top: "label" '
        'hdf5_data_param { source: "l.txt" batch_size: 2 } }')
    result = CliRunner().invoke(main, ["time", "--model", str(tmp_path / "net.prototxt"),
                                       "--iterations", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("caffelite: error:")
    assert "a.h5 has no dataset 'label'" in errors[0]


def test_a_batch_larger_than_the_data_wraps_inside_the_batch(three_files):
    source, paths = three_files
    layer, top = make(source, TOPS, 30)  # 12 rows in all: each batch wraps twice and more
    stored = [np.concatenate(parts) for parts in zip(*(read_h5(p, TOPS) for p in paths))]
    for i, got in enumerate(batches(layer, top, 2)):
        rows = np.arange(30 * i, 30 * i + 30) % 12
        for g, s in zip(got, stored):
            np.testing.assert_array_equal(g, s[rows].astype(np.float32))
