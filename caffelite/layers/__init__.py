"""One module per Caffe layer type; importing this package registers all of them."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def __getattr__(name):
    """`caffelite.layers.<Type>(...)`: NetSpec's layer functions (pycaffe's caffe.layers)."""
    if name[:1].isupper():
        from ..net_spec import layer_function

        return layer_function(name)
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
