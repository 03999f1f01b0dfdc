"""The issue's acceptance paths: BVLC's own prototxts, changed only in their data paths,
training from databases made by caffelite's tools (a quick CIFAR-10 run by default; the LeNet
runs to 0.97 are slow-marked)."""
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, ROOT, need_shared
from test_data_tools import write_cifar

import caffelite
from caffelite.cli import main

pytest.importorskip("lmdb")
pytest.importorskip("plyvel")
Image = pytest.importorskip("PIL.Image")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def with_paths(text, replacements):
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, str(new))
    return text


@pytest.mark.timeout(240)
def test_bvlc_cifar10_quick_trains_from_caffelite_data_cifar10(tmp_path, rng):
    bvlc = need_shared(EXAMPLES / "cifar10")
    write_cifar(tmp_path / "raw", rng, per_file=30)
    run("data", "cifar10", "--input-dir", tmp_path / "raw", "--out-dir", tmp_path)
    run("compute-image-mean", tmp_path / "cifar10_train_lmdb", tmp_path / "mean.binaryproto")
    net = with_paths((bvlc / "cifar10_quick_train_test.prototxt").read_text(), {
        "examples/cifar10/mean.binaryproto": tmp_path / "mean.binaryproto",
        "examples/cifar10/cifar10_train_lmdb": tmp_path / "cifar10_train_lmdb",
        "examples/cifar10/cifar10_test_lmdb": tmp_path / "cifar10_test_lmdb"})
    (tmp_path / "net.prototxt").write_text(net)
    solver_text = with_paths((bvlc / "cifar10_quick_solver.prototxt").read_text(), {
        "examples/cifar10/cifar10_quick_train_test.prototxt": tmp_path / "net.prototxt",
        "examples/cifar10/cifar10_quick": tmp_path / "snap"})
    (tmp_path / "solver.prototxt").write_text(solver_text)
    solver = caffelite.get_solver(str(tmp_path / "solver.prototxt"))
    solver.step(2)
    data = solver.net.blobs["data"].data
    raw = np.concatenate([np.fromfile(tmp_path / "raw" / f"data_batch_{k}.bin", np.uint8)
                          .reshape(-1, 3073) for k in range(1, 6)])
    images = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64)
    mean = images.mean(axis=0)
    second = images[np.arange(100, 200) % len(images)]  # the second batch of 100, wrapped
    np.testing.assert_allclose(data, (second - mean).astype(np.float32), atol=1e-4)
    np.testing.assert_array_equal(solver.net.blobs["label"].data,
                                  raw[np.arange(100, 200) % len(raw), 0])
    assert np.isfinite(solver.smoothed_loss)


@pytest.mark.timeout(240)
def test_configs_cifar10_quick_reads_the_tools_output(tmp_path, rng, monkeypatch):
    write_cifar(tmp_path / "raw", rng, per_file=4)
    monkeypatch.chdir(tmp_path)
    run("data", "cifar10", "--input-dir", "raw", "--out-dir", ".")
    run("compute-image-mean", "cifar10_train_lmdb", "mean.binaryproto")
    folder = ROOT / "configs" / "cifar10_quick"
    solver = caffelite.get_solver(str(folder / "cifar10_quick_solver.prototxt"))
    assert solver.param.max_iter == 4000 and solver.param.base_lr == pytest.approx(0.001)
    assert solver.net.blobs["data"].shape == (100, 3, 32, 32)
    solver.step(1)
    assert np.isfinite(solver.smoothed_loss)
    second = caffelite.read_solver_param(str(folder / "cifar10_quick_solver_lr1.prototxt"))
    assert second.max_iter == 5000 and second.base_lr == pytest.approx(0.0001)


# -- LeNet from PNG files to 0.97 (slow) --------------------------------------------------------
def write_digit_pngs(tmp_path):
    """The bundled digits as PNG files and the train/test list files."""
    from caffelite.data.mnist import load_bundled

    lists = {}
    for split in ("train", "test"):
        images, labels = load_bundled(f"mnist10k/{split}")
        folder = tmp_path / "png" / split
        folder.mkdir(parents=True)
        lines = []
        for k, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(folder / f"{k:05d}.png")
            lines.append(f"{split}/{k:05d}.png {label}\n")
        lists[split] = tmp_path / f"{split}.txt"
        lists[split].write_text("".join(lines))
    return tmp_path / "png", lists


def lenet_run(tmp_path, net_text):
    """BVLC's lenet_solver.prototxt (net and snapshot paths changed) through `caffelite
    train`; returns the last test accuracy."""
    from test_cli_train import parse_log

    (tmp_path / "net.prototxt").write_text(net_text)
    solver = with_paths((EXAMPLES / "mnist" / "lenet_solver.prototxt").read_text(), {
        "examples/mnist/lenet_train_test.prototxt": tmp_path / "net.prototxt",
        '"examples/mnist/lenet"': f'"{tmp_path / "lenet"}"'})
    (tmp_path / "solver.prototxt").write_text(solver)
    process = subprocess.run([sys.executable, "-m", "caffelite", "train", "--solver",
                              str(tmp_path / "solver.prototxt"), "--log", "lenet.log",
                              "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    _, tests = parse_log((tmp_path / "lenet.log").read_text())
    final = tests[max(tests)]
    print(f"\n{tmp_path.name}: test accuracy {final['accuracy']} at {max(tests)}")
    return final["accuracy"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_bvlc_lenet_from_convert_imageset_reaches_097(tmp_path, backend):
    need_shared(EXAMPLES / "mnist")
    root, lists = write_digit_pngs(tmp_path)
    for split in ("train", "test"):
        run("convert-imageset", f"{root}/", lists[split], tmp_path / f"mnist_{split}_db",
            "--gray", "--backend", backend)
    text = (EXAMPLES / "mnist" / "lenet_train_test.prototxt").read_text()
    text = with_paths(text, {"examples/mnist/mnist_train_lmdb": tmp_path / "mnist_train_db",
                             "examples/mnist/mnist_test_lmdb": tmp_path / "mnist_test_db"})
    if backend == "leveldb":
        text = text.replace("backend: LMDB", "backend: LEVELDB")
    assert lenet_run(tmp_path, text) >= 0.97


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bvlc_lenet_as_imagedata_reaches_097(tmp_path):
    need_shared(EXAMPLES / "mnist")
    root, lists = write_digit_pngs(tmp_path)
    text = (EXAMPLES / "mnist" / "lenet_train_test.prototxt").read_text()
    for split in ("train", "test"):
        batch = 64 if split == "train" else 100
        pattern = (r'type: "Data"(.*?)data_param \{\s*source: "examples/mnist/mnist_' + split
                   + r'_lmdb"\s*batch_size: \d+\s*backend: LMDB\s*\}')
        replacement = (r'type: "ImageData"\1image_data_param { source: "' + str(lists[split])
                       + f'" root_folder: "{root}/" batch_size: {batch} is_color: false }}')
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.S)
        assert count == 1
    assert lenet_run(tmp_path, text) >= 0.97
