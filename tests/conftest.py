"""Shared fixtures: where ../shared is, and skips for optional oracles."""
import os
from pathlib import Path

import numpy as np
import pytest

from caffelite import runtime

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


def use_compiled_kernels(enabled):
    """Turn the compiled kernels (runtime.Kernel) on or off, skipping the test when they
    cannot be on; returns the previous setting, for runtime.set_compiled_kernels."""
    previous = runtime.set_compiled_kernels(enabled)
    if enabled and not runtime.compiled_kernels():
        runtime.set_compiled_kernels(previous)
        pytest.skip("Numba is not installed (or CAFFELITE_NUMBA=0): no compiled kernels")
    return previous


@pytest.fixture(params=["numpy", "compiled"])
def kernel_route(request):
    """A layer with compiled kernels tested both ways: its NumPy code, and its kernels."""
    previous = use_compiled_kernels(request.param == "compiled")
    yield request.param
    runtime.set_compiled_kernels(previous)


@pytest.fixture(params=["batch_last", "per_image", "per_image_compiled"])
def conv_route(request, monkeypatch):
    """Convolution's three im2col routes: batch-last columns (narrow outputs, groups), one
    GEMM per image on NumPy's window copy, and per image on the compiled im2col."""
    from caffelite.layers import convolution
    wide = 0 if request.param.startswith("per_image") else 1 << 30
    monkeypatch.setattr(convolution, "BATCH_LAST_BELOW_WIDTH", wide)
    previous = use_compiled_kernels(request.param == "per_image_compiled")
    yield request.param
    runtime.set_compiled_kernels(previous)


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
