"""Paths inside configs: files a net or solver names are looked up beside the config first
(then the working directory, then the folders above, for BVLC configs written from the Caffe
root), and Python layer modules in the documented places only."""
import os

from ..proto import caffelite_pb2 as pb

URL_PREFIX = "caffelite://"

# Files a layer reads: (sub-message, field). Outputs (hdf5_output_param) stay as written.
_NET_PATH_FIELDS = (
    ("data_param", "source"), ("data_param", "mean_file"), ("transform_param", "mean_file"),
    ("hdf5_data_param", "source"), ("image_data_param", "source"),
    ("image_data_param", "mean_file"), ("image_data_param", "root_folder"),
    ("window_data_param", "source"), ("window_data_param", "mean_file"),
    ("window_data_param", "root_folder"), ("infogain_loss_param", "source"),
)


def resolve_path(path, base_file=None):
    """path relative to base_file's directory when it exists there, else as given (relative to
    the working directory). When neither exists, the directories above base_file are tried, so
    BVLC configs naming "examples/mnist/..." from the Caffe root resolve from anywhere."""
    if not path or base_file is None or str(path).startswith(URL_PREFIX):
        return path
    expanded = os.path.expanduser(str(path))
    if os.path.isabs(expanded):
        return expanded
    here = os.path.dirname(os.path.abspath(str(base_file)))
    beside = os.path.join(here, expanded)
    if os.path.exists(beside):
        return os.path.normpath(beside)
    if os.path.exists(expanded):
        return expanded
    parent = os.path.dirname(here)
    while parent != here:
        here, parent = parent, os.path.dirname(parent)
        candidate = os.path.join(here, expanded)
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return path


def resolve_net_paths(net_param, base_file):
    """A copy of net_param with the files its layers read resolved against base_file."""
    net = pb.NetParameter()
    net.CopyFrom(net_param)
    for layer in list(net.layer) + list(net.layers):
        for param_name, field in _NET_PATH_FIELDS:
            if param_name not in layer.DESCRIPTOR.fields_by_name or not layer.HasField(param_name):
                continue
            param = getattr(layer, param_name)
            if param.HasField(field):
                value = getattr(param, field)
                resolved = resolve_path(value, base_file)
                if field == "root_folder" and value.endswith("/") and not resolved.endswith("/"):
                    resolved += "/"  # Caffe concatenates root_folder + file name
                setattr(param, field, resolved)
        if layer.HasField("python_param") and layer.python_param.module:
            layer.python_param.module = resolve_module(layer.python_param.module, base_file)
    return net


def resolve_module(module, base_file):
    """python_param.module with the net file's directory applied, and nothing else searched:

    - a path (ending in .py, or containing '/'): absolute as given; relative, beside the net
      file when it exists there, else as given (the working directory);
    - a module name without dots: `<net file's directory>/<name>.py` when that file exists,
      else the name as given, which PythonLayer imports from sys.path, then the working
      directory.
    Directories above the net file are never searched (a config names the code it runs)."""
    if base_file is None or str(module).startswith(URL_PREFIX):
        return module
    here = os.path.dirname(os.path.abspath(str(base_file)))
    is_path = module.endswith(".py") or "/" in module or os.sep in module
    if is_path:
        expanded = os.path.expanduser(module)
        if os.path.isabs(expanded):
            return expanded
        beside = os.path.join(here, expanded)
        return os.path.normpath(beside) if os.path.isfile(beside) else module
    if "." not in module and os.path.isfile(os.path.join(here, module + ".py")):
        return os.path.join(here, module + ".py")
    return module


def resolve_solver_paths(solver_param, base_file):
    """A copy of solver_param with net/train_net/test_net/weights and the files read by inline
    nets resolved against base_file (snapshot_prefix, an output, stays as written)."""
    solver = pb.SolverParameter()
    solver.CopyFrom(solver_param)
    for name in ("net", "train_net"):
        if solver.HasField(name):
            setattr(solver, name, resolve_path(getattr(solver, name), base_file))
    for name in ("test_net", "weights"):
        values = [resolve_path(v, base_file) for v in getattr(solver, name)]
        solver.ClearField(name)
        getattr(solver, name).extend(values)
    for name in ("net_param", "train_net_param"):
        if solver.HasField(name):
            getattr(solver, name).CopyFrom(resolve_net_paths(getattr(solver, name), base_file))
    for net in solver.test_net_param:
        net.CopyFrom(resolve_net_paths(net, base_file))
    return solver
