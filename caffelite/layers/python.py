"""Python: a user's layer class, python_param { module layer param_str }, run as any other layer."""
import importlib
import importlib.util
import logging
import os
import sys

from ..blob import Blob
from ..layer import Layer
from ..registry import register_layer, suggest

logger = logging.getLogger("caffelite")


class BlobVec(list):
    """A layer's parameter list with pycaffe's `add_blob(*shape)`."""

    def __init__(self, items=(), dtype=None):
        super().__init__(items)
        self.dtype = dtype

    def add_blob(self, *shape):
        self.append(Blob(shape, dtype=self.dtype))
        return self[-1]


def _load_file(path):
    """Import a module from a .py path (config resolution turns 'x.py' into one)."""
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _is_missing(exc, name):
    """True when the ModuleNotFoundError is about `name` itself (or its package)."""
    return exc.name is not None and (name == exc.name or name.startswith(exc.name + "."))


def import_user_module(layer, name):
    """The module python_param.module names, its file logged: a .py path (the net file's
    directory was applied when the net was read: formats.config.resolve_module), or a module
    on sys.path, then in the working directory. Nowhere else is searched."""
    module = _import_user_module(layer, name)
    where = getattr(module, "__file__", None) or "(built in)"
    logger.info("Python layer '%s': module '%s' from %s", layer.name, name, where)
    return module


def _import_user_module(layer, name):
    hint = ("put it beside the net file or in the working directory, put its directory on "
            "PYTHONPATH, or give python_param.module as the path of the .py file (relative "
            "to the net file)")
    try:
        if name.endswith(".py") or os.sep in name or "/" in name:
            path = os.path.abspath(name)
            if not os.path.isfile(path):
                raise layer.error(f"python_param.module '{name}': no such file; {hint}")
            return _load_file(path)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            cwd = os.getcwd()
            if not _is_missing(exc, name) or cwd in sys.path or "" in sys.path:
                raise
        sys.path.insert(0, cwd)  # Caffe users often run from the module's directory
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(cwd)
    except ModuleNotFoundError as exc:
        if _is_missing(exc, name):
            raise layer.error(f"cannot import python_param.module '{name}': no module named "
                              f"'{exc.name}' on sys.path or in the working directory; "
                              f"{hint}") from None
        raise layer.error(f"importing python_param.module '{name}' failed: {exc}") from exc
    except (ImportError, SyntaxError) as exc:
        raise layer.error(f"importing python_param.module '{name}' failed: "
                          f"{type(exc).__name__}: {exc}") from exc


@register_layer("Python")
class PythonLayer(Layer):
    """Runs a user's class as pycaffe's PythonLayer does.

    python_param: module (a module name on sys.path, or a path to a .py file), layer (the class
    name), param_str (any text; the class parses it). The class subclasses caffelite.Layer and
    implements pycaffe's methods: setup(bottom, top), reshape(bottom, top),
    forward(bottom, top), backward(top, propagate_down, bottom). It is built with this layer's
    LayerParameter; `param_str` and `phase` are set before its setup. Its `blobs` (with
    pycaffe's add_blob) are this layer's parameters. The blobs it gets are caffelite Blobs
    (`count()` is a method; `.data`, `.diff`, `.shape`, `.num`, `reshape(*shape)` as in
    pycaffe). Default loss weight 0: a Python loss layer says `loss_weight: 1`, as in Caffe.
    """

    allow_in_place = True

    def layer_setup(self, bottom, top):
        param = self.layer_param.python_param
        if not param.module or not param.layer:
            raise self.error("python_param needs both `module` and `layer` (the class name)")
        module = import_user_module(self, param.module)
        cls = getattr(module, param.layer, None)
        if cls is None:
            classes = [n for n, v in vars(module).items() if isinstance(v, type)]
            raise self.error(f"module '{param.module}' has no class '{param.layer}'"
                             f"{suggest(param.layer, classes)}")
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise self.error(f"'{param.module}.{param.layer}' must be a subclass of "
                             "caffelite.Layer (pycaffe's caffe.Layer)")
        self.user = cls(self.layer_param, phase=self.phase, dtype=self.dtype, rng=self.rng)
        self.user.param_str = param.param_str
        self.user.phase = self.phase
        self.blobs = self.user.blobs = BlobVec(self.blobs, dtype=self.dtype)
        self.user.setup(bottom, top)
        self.blobs = self.user.blobs  # the same list, unless setup rebound it

    def reshape(self, bottom, top):
        # The net sets param_propagate_down on this layer; the user's object sees the same list.
        self.user.param_propagate_down = self.param_propagate_down
        self.user.reshape(bottom, top)

    def forward(self, bottom, top):
        self.user.forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        self.user.backward(top, propagate_down, bottom)

    def allow_force_backward(self, bottom_index):
        return self.user.allow_force_backward(bottom_index)
