"""Shared fixtures: where ../shared is, and skips for optional oracles."""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAFFELITE_SHARED", ROOT.parent / "shared"))
CAFFE = SHARED / "caffe"
EXAMPLES = CAFFE / "examples"
LENET_BVLC = CAFFE / "lenet-bvlc"
MNIST10K = SHARED / "data" / "mnist10k.npz"


def need_shared(path):
    """Skip (with the reason) when a ../shared fixture is absent."""
    if not Path(path).exists():
        pytest.skip(f"fixture {path} not present (the ../shared checkout)")
    return Path(path)


@pytest.fixture
def rng():
    return np.random.default_rng(1701)


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "slow: end-to-end runs (skipped by default; CI=true runs them)")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    """Slow end-to-end tests run under CI=true (as .ci/run sets) or with --runslow."""
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() == "true":
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: set CI=true or pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
