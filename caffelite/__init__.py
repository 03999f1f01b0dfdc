"""caffelite: BVLC Caffe in Python and NumPy — prototxt/YAML nets, Caffe's layers and solvers,
.caffemodel/.solverstate compatibility, and pycaffe's API."""
from .errors import CaffeliteError, ConfigError, NetError, SolverError, WeightsError
from .layer import TEST, TRAIN, Layer
from .random import set_random_seed

__version__ = "0.1.0"
__all__ = ["CaffeliteError", "ConfigError", "NetError", "SolverError", "WeightsError", "TEST",
           "TRAIN", "Layer", "set_random_seed", "layer_type_list", "set_mode_cpu", "set_mode_gpu"]

# Heavier parts load on first use, so `import caffelite` and the CLI start fast.
_LAZY = {
    "Net": ("net", "Net"),
    "Blob": ("blob", "Blob"),
    "read_net_param": ("formats.config", "read_net_param"),
    "read_solver_param": ("formats.config", "read_solver_param"),
    "write_net_param": ("formats.config", "write_net_param"),
    "write_solver_param": ("formats.config", "write_solver_param"),
    "get_solver": ("solvers", "get_solver"),
    "SGDSolver": ("solvers", "SGDSolver"),
    "NesterovSolver": ("solvers", "NesterovSolver"),
    "AdaGradSolver": ("solvers", "AdaGradSolver"),
    "RMSPropSolver": ("solvers", "RMSPropSolver"),
    "AdaDeltaSolver": ("solvers", "AdaDeltaSolver"),
    "AdamSolver": ("solvers", "AdamSolver"),
    "NetSpec": ("net_spec", "NetSpec"),
    "params": ("net_spec", "params"),
    "solver_count": ("parallel.mpi", "solver_count"),
    "solver_rank": ("parallel.mpi", "solver_rank"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'caffelite' has no attribute '{name}'")


def layer_type_list():
    """Every registered layer type, sorted (pycaffe's caffe.layer_type_list())."""
    from . import layers  # noqa: F401  (registers the types)
    from .registry import LAYERS

    return LAYERS.names()


def set_mode_cpu():
    """Compute on the CPU with NumPy (the default)."""


def set_mode_gpu():
    """GPU compute needs the CuPy backend, which is not available in this build."""
    raise CaffeliteError("GPU mode is not available yet: caffelite computes with NumPy on the CPU")
