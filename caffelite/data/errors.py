"""DataError, and importing the optional packages the data sources need."""
import importlib

from ..errors import CaffeliteError

EXTRA = 'pip install "caffelite[data]"'
PACKAGES = {"lmdb": "lmdb", "plyvel": "plyvel", "PIL": "Pillow"}


class DataError(CaffeliteError):
    """A database, image list or image that cannot be read as a data layer needs it."""


def need(module, purpose):
    """Import an optional package, or raise one line naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = PACKAGES.get(module.split(".")[0], module)
        raise DataError(f"{purpose} needs the {package} package, which is not installed: "
                        f"{EXTRA}") from None
