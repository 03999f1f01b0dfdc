"""Bundled MNIST access, the IDX reader/converter and `caffelite data mnist`."""
import gzip
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MNIST10K, ROOT, need_shared

from caffelite.cli import main
from caffelite.data.mnist import bundled_path, convert_idx_dir, load_bundled, read_idx
from caffelite.data.sources import load_source
from caffelite.errors import CaffeliteError


def write_idx(path, array, code=0x08, dtype=">u1"):
    """An IDX file as LeCun's site documents it: 0, 0, type code, ndim, big-endian dims, data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.asarray(array, dtype).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def tiny_mnist(rng, n):
    return rng.integers(0, 256, (n, 6, 5), dtype=np.uint8), rng.integers(0, 10, n, np.uint8)


def test_bundled_splits_are_the_shared_sample(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # located through the package, not the working directory
    shared = np.load(need_shared(MNIST10K))
    train_images, train_labels = load_bundled("mnist10k/train")
    test_images, test_labels = load_bundled("mnist10k/test")
    assert train_images.shape == (8000, 28, 28) and test_images.shape == (2000, 28, 28)
    np.testing.assert_array_equal(train_images, shared["images"][:8000])
    np.testing.assert_array_equal(train_labels, shared["labels"][:8000])
    np.testing.assert_array_equal(test_images, shared["images"][8000:])
    np.testing.assert_array_equal(test_labels, shared["labels"][8000:])
    assert bundled_path().is_file()
    assert str(bundled_path()).startswith(str(ROOT / "caffelite"))


def test_load_source_adds_the_channel_axis():
    images, labels = load_source("caffelite://mnist10k/test")
    assert images.shape == (2000, 1, 28, 28) and labels.shape == (2000,)


@pytest.mark.parametrize("source, message", [
    ("caffelite://mnist10k/valid", "unknown bundled dataset"),
    ("no/such/file.npz", "no such file"),
])
def test_load_source_errors_name_the_working_sources(source, message):
    with pytest.raises(CaffeliteError, match=message) as info:
        load_source(source)
    assert "caffelite://mnist10k/train" in str(info.value) and ".npz" in str(info.value)


def test_load_source_rejects_directories_and_other_files(tmp_path):
    (tmp_path / "mnist_train_lmdb").mkdir()
    with pytest.raises(CaffeliteError, match="LMDB or LevelDB"):
        load_source(str(tmp_path / "mnist_train_lmdb"))
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(CaffeliteError, match="not a readable .npz"):
        load_source(str(tmp_path / "notes.txt"))
    np.savez(tmp_path / "x.npz", data=np.zeros((2, 3, 3)))
    with pytest.raises(CaffeliteError, match="no 'images' array"):
        load_source(str(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", images=np.zeros((2, 3, 3)), labels=np.zeros(3))
    with pytest.raises(CaffeliteError, match="one label per image"):
        load_source(str(tmp_path / "y.npz"))


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_read_idx_plain_and_gzipped(tmp_path, rng, name):
    images = rng.integers(0, 256, (4, 3, 2), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    out = read_idx(tmp_path / name)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)
    floats = rng.standard_normal((3, 2)).astype(np.float32)
    write_idx(tmp_path / name, floats, code=0x0D, dtype=">f4")
    np.testing.assert_array_equal(read_idx(tmp_path / name), floats)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path, rng):
    (tmp_path / "bad").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CaffeliteError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "cut", rng.integers(0, 256, (4, 3, 2), dtype=np.uint8))
    raw = (tmp_path / "cut").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-5])
    with pytest.raises(CaffeliteError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_convert_both_splits(tmp_path, rng):
    train, test = tiny_mnist(rng, 7), tiny_mnist(rng, 3)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train[0])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train[1])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test[0])  # plain, as after gunzip
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test[1])
    written = convert_idx_dir(str(tmp_path), str(tmp_path / "out" / "mnist.npz"))
    assert [w[0] for w in written] == [str(tmp_path / "out" / f"mnist_{s}.npz")
                                       for s in ("train", "test")]
    for (path, _, _), (images, labels) in zip(written, (train, test)):
        npz = np.load(path)
        np.testing.assert_array_equal(npz["images"], images)
        np.testing.assert_array_equal(npz["labels"], labels)
        loaded_images, loaded_labels = load_source(path)  # what a Data layer reads
        np.testing.assert_array_equal(loaded_images[:, 0], images)
        np.testing.assert_array_equal(loaded_labels, labels)
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_convert_one_split_and_errors(tmp_path, rng):
    images, labels = tiny_mnist(rng, 4)
    write_idx(tmp_path / "train-images.idx3-ubyte", images)  # a mirror's spelling
    with pytest.raises(CaffeliteError, match="train images but no train-labels-idx1-ubyte"):
        convert_idx_dir(str(tmp_path), str(tmp_path / "m"))
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels[:3])
    with pytest.raises(CaffeliteError, match="do not pair up"):
        convert_idx_dir(str(tmp_path), str(tmp_path / "m"))
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels)
    written = convert_idx_dir(str(tmp_path), str(tmp_path / "m"))
    assert [w[0] for w in written] == [str(tmp_path / "m_train.npz")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaffeliteError, match="holds no MNIST IDX files"):
        convert_idx_dir(str(tmp_path / "empty"), str(tmp_path / "x.npz"))


def test_cli_data_mnist(tmp_path, rng):
    train, test = tiny_mnist(rng, 5), tiny_mnist(rng, 2)
    for stem, (images, labels) in (("train", train), ("t10k", test)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", labels)
    out = tmp_path / "mnist.npz"
    result = CliRunner().invoke(main, ["data", "mnist", "--idx-dir", str(tmp_path),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'mnist_train.npz'}: 5 images 6×5 uint8" in result.output
    assert f"wrote {tmp_path / 'mnist_test.npz'}: 2 images 6×5 uint8" in result.output
    np.testing.assert_array_equal(np.load(tmp_path / "mnist_test.npz")["labels"], test[1])

    missing = CliRunner().invoke(main, ["data", "mnist", "--idx-dir", str(tmp_path / "none"),
                                        "--out", str(out)])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [
        f"caffelite: error: {tmp_path / 'none'}: no such directory"]
