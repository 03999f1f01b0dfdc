"""BVLC's examples/hdf5_classification/train_val.prototxt, unchanged, trains from .h5 files
laid out as Caffe's notebook writes them (list entries relative to the Caffe root) to the
accuracy of a logistic regression fitted directly with NumPy."""
import shutil

import numpy as np
import pytest
from conftest import EXAMPLES, need_shared

h5py = pytest.importorskip("h5py")


def blobs(rng, n):
    """Two Gaussian classes in 4-D, 2 units apart along a random direction."""
    direction = rng.standard_normal(4)
    direction /= np.linalg.norm(direction)
    labels = rng.integers(0, 2, n)
    data = rng.standard_normal((n, 4)) + np.outer(2 * labels - 1, direction)
    return data.astype(np.float32), labels.astype(np.float32)


def numpy_logistic_accuracy(train, test, steps=500, lr=0.5):
    (x, y), (xt, yt) = train, test
    x1, xt1 = np.c_[x, np.ones(len(x))], np.c_[xt, np.ones(len(xt))]
    w = np.zeros(5)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        w -= lr * x1.T @ (p - y) / len(y)
    return ((xt1 @ w > 0) == yt).mean()


@pytest.mark.timeout(240)
def test_bvlc_hdf5_classification_trains(tmp_path, monkeypatch):
    prototxt = need_shared(EXAMPLES / "hdf5_classification" / "train_val.prototxt")
    root = tmp_path / "caffe"
    example = root / "examples" / "hdf5_classification"
    (example / "data").mkdir(parents=True)
    shutil.copy(prototxt, example / "train_val.prototxt")
    rng = np.random.default_rng(0)
    data, labels = blobs(rng, 10000)
    train, test = (data[:7500], labels[:7500]), (data[7500:], labels[7500:])
    parts = {"train.h5": slice(0, 4000), "train2.h5": slice(4000, 7500)}
    for name, rows in parts.items():
        with h5py.File(example / "data" / name, "w") as f:
            f.create_dataset("data", data=train[0][rows])
            f.create_dataset("label", data=train[1][rows])
    with h5py.File(example / "data" / "test.h5", "w") as f:
        f.create_dataset("data", data=test[0])
        f.create_dataset("label", data=test[1])
    for list_name, files in (("train.txt", parts), ("test.txt", ["test.h5"])):
        (example / "data" / list_name).write_text(
            "".join(f"examples/hdf5_classification/data/{name}\n" for name in files))
    (root / "solver.prototxt").write_text(
        'net: "examples/hdf5_classification/train_val.prototxt"\n'
        "test_iter: 250 test_interval: 1000 base_lr: 0.01 momentum: 0.9 weight_decay: 5e-4\n"
        'lr_policy: "step" gamma: 0.1 stepsize: 1500 max_iter: 2000 random_seed: 1701\n'
        'display: 0 snapshot_after_train: false\n')
    monkeypatch.chdir(root)  # as in Caffe, run from its root
    from caffelite.solvers import Solver

    solver = Solver("solver.prototxt")
    solver.solve()
    accuracy = solver.test_results[0]["accuracy"]
    expected = numpy_logistic_accuracy(train, test)
    assert expected > 0.82  # the Bayes rate of these classes is Φ(1) = 0.841
    assert accuracy >= expected - 0.01, (accuracy, expected)
    print(f"accuracy {accuracy:.4f}, NumPy logistic regression {expected:.4f}")
