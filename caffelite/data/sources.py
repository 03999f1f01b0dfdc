"""Datasets a Data layer loads whole: the bundled MNIST sample ("caffelite://...") and .npz
files (databases are streamed: see batches.DatumSource).

A source is either a bundled name, `caffelite://mnist10k/train` (the first 8,000 digits of
the shipped sample) or `caffelite://mnist10k/test` (the last 2,000), or the path of an .npz
holding `images` ((N, H, W) or (N, C, H, W), uint8 or float) and `labels` ((N,)), as
`caffelite data mnist` writes it.
"""
import os
import zipfile

import numpy as np

from ..errors import CaffeliteError
from .mnist import BUNDLED, bundled_path, load_bundled

SCHEME = "caffelite://"

__all__ = ["BUNDLED", "SCHEME", "bundled_path", "describe_sources", "load_bundled",
           "load_source"]


def describe_sources():
    """One sentence naming every source kind that works, for error messages."""
    names = ", ".join(f'"{SCHEME}{name}"' for name in BUNDLED)
    return (f"use an LMDB or LevelDB database directory (`caffelite convert-imageset` and "
            f"`caffelite data mnist|cifar10` write them), a bundled dataset ({names}) or the "
            "path of an .npz with 'images' and 'labels' arrays")


def load_source(source):
    """(images, labels) of a source as stored: images (N, C, H, W), labels (N,) or None.

    Raises CaffeliteError for an unknown bundled name, a missing file, or a file that is not
    an .npz with an `images` array.
    """
    if source.startswith(SCHEME):
        name = source[len(SCHEME):]
        if name not in BUNDLED:
            raise CaffeliteError(f'unknown bundled dataset "{source}"; {describe_sources()}')
        images, labels = load_bundled(name)
    else:
        images, labels = _load_npz(source)
    if images.ndim == 3:
        images = images[:, None]  # (N, H, W) -> (N, 1, H, W): one grey channel
    if images.ndim != 4:
        raise CaffeliteError(f"{source}: 'images' has shape {images.shape}; expected "
                             "(N, H, W) or (N, C, H, W)")
    if labels is not None and labels.shape != (images.shape[0],):
        raise CaffeliteError(f"{source}: 'labels' has shape {labels.shape}; expected "
                             f"({images.shape[0]},), one label per image")
    return images, labels


def _load_npz(path):
    if os.path.isdir(path):
        raise CaffeliteError(
            f"{path} is a directory (an LMDB or LevelDB database?): a Data layer streams it; "
            f"only bundled and .npz sources load whole. {describe_sources()}")
    if not os.path.isfile(path):
        raise CaffeliteError(f"{path}: no such file; {describe_sources()}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CaffeliteError(f"{path} is not a readable .npz file ({exc}); "
                             f"{describe_sources()}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CaffeliteError(f"{path} is a single .npy array, not an .npz; "
                             f"{describe_sources()}")
    with npz:
        if "images" not in npz.files:
            raise CaffeliteError(f"{path} has no 'images' array (it has {sorted(npz.files)}); "
                                 f"{describe_sources()}")
        names = ["images"] + (["labels"] if "labels" in npz.files else [])
        arrays = [_npz_array(npz, path, name) for name in names]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)


def _npz_array(npz, path, name):
    """npz[name], a numeric array, or a CaffeliteError saying what it holds instead."""
    try:
        array = npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CaffeliteError(f"{path}: '{name}' is an object array, which only a pickle can "
                                 "hold; .npz sources are loaded with allow_pickle=False (a "
                                 "pickle can run code): save it as a numeric array") from None
        raise CaffeliteError(f"{path}: '{name}' cannot be read ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CaffeliteError(f"{path}: '{name}' cannot be read ({exc}); is the file "
                             "truncated?") from None
    if array.dtype.kind not in "buif":
        raise CaffeliteError(f"{path}: '{name}' holds {array.dtype} values; expected numbers "
                             "(uint8 or float images, integer or float labels)")
    return array
