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
    "export_onnx": ("export", "export_onnx"),
    # pycaffe's module-level names (caffe.set_device, caffe.Timer, caffe.Classifier ...)
    "to_proto": ("net_spec", "to_proto"),
    "set_device": ("pycaffe.state", "set_device"),
    "has_nccl": ("pycaffe.state", "has_nccl"),
    "solver_count": ("pycaffe.state", "solver_count"),
    "set_solver_count": ("pycaffe.state", "set_solver_count"),
    "solver_rank": ("pycaffe.state", "solver_rank"),
    "set_solver_rank": ("pycaffe.state", "set_solver_rank"),
    "set_multiprocess": ("pycaffe.state", "set_multiprocess"),
    "Timer": ("pycaffe.state", "Timer"),
    "NCCL": ("pycaffe.state", "NCCL"),
    "init_log": ("pycaffe.state", "init_log"),
    "log": ("pycaffe.state", "log"),
    "Classifier": ("pycaffe.classifier", "Classifier"),
    "Detector": ("pycaffe.detector", "Detector"),
}
# Submodules pycaffe code reaches as attributes (caffe.io.Transformer, caffe.layers ...).
_SUBMODULES = {"io", "draw", "coord_map", "net_spec", "layers", "proto", "classifier",
               "detector", "pycaffe"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'caffelite' has no attribute '{name}'")


def layer_type_list():
    """Every registered layer type, sorted (pycaffe's caffe.layer_type_list())."""
    from . import layers  # noqa: F401  (registers the types)
    from .registry import LAYERS

    return LAYERS.names()


def set_mode_cpu():
    """Compute on the CPU with NumPy (the default)."""
    from .pycaffe.state import set_mode_cpu as cpu

    cpu()


def set_mode_gpu():
    """Caffe's GPU mode: with no GPU backend this warns once ("no GPU backend; running on the
    CPU") and computation goes on with NumPy, so scripts written for a GPU run unchanged."""
    from .pycaffe.state import set_mode_gpu as gpu

    gpu()
