"""Random number generators. Each Net/Solver owns its own Generator (no state shared between
nets, processes or devices); `set_random_seed` only seeds the default used by objects built
without one, as pycaffe's caffe.set_random_seed does."""
import numpy as np

_default = {"rng": np.random.default_rng()}


def set_random_seed(seed):
    """Seed the default generator of this process (used where no rng is passed)."""
    _default["rng"] = np.random.default_rng(seed)


def default_rng():
    return _default["rng"]


def make_rng(seed=None):
    """A fresh Generator: seeded when seed >= 0, from the OS otherwise (Caffe's random_seed)."""
    return np.random.default_rng(seed if seed is not None and seed >= 0 else None)
