"""HDF5Data: top_k = rows of the dataset named top_k in the .h5 files `source` lists."""
import os

import numpy as np

from ..data.shard import batch_offsets
from ..layer import TRAIN, Layer
from ..registry import register_layer


def import_h5py(error):
    """h5py, or `error` naming the pip command that installs it."""
    try:
        import h5py
    except ImportError:
        raise error('needs h5py, which is not installed: pip install "caffelite[hdf5]"') from None
    return h5py


def read_file_list(source, error):
    """The .h5 paths listed in `source` (whitespace-separated tokens, as Caffe reads them),
    each relative path resolved beside the list file first, then from the working directory."""
    from ..formats.config import resolve_path

    try:
        with open(source, encoding="utf-8") as f:
            names = f.read().split()
    except FileNotFoundError:
        raise error(f"hdf5_data_param.source {source}: no such list file (a text file "
                    "naming one .h5 file per line)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"hdf5_data_param.source {source}: cannot read the list file ({exc})") \
            from None
    if not names:
        raise error(f"hdf5_data_param.source {source} lists no .h5 files; write one path per "
                    "line")
    paths = [resolve_path(name, source) for name in names]
    for name, path in zip(names, paths):
        if not os.path.isfile(path):
            raise error(f"{source} lists {name}, which does not exist (looked beside the list "
                        "file and in the working directory)")
    return paths


@register_layer("HDF5Data")
class HDF5DataLayer(Layer):
    """Reads the .h5 files listed in `hdf5_data_param.source`, `batch_size` rows per forward.

    Top k is filled from the dataset named like top k, so any number of tops of any shape:
    top k is (batch_size,) + the dataset's shape without its first axis, which all datasets
    of a file share (their row count). Integer and float datasets are read as the net's
    float type. Each file is loaded whole when reached, as Caffe does; batches run on across
    file ends, and after the last file the list starts again. The listed paths are resolved
    beside the list file, then from the working directory (Caffe's only choice).

    `shuffle` permutes the file order at setup and at each pass over the list, and the rows
    of a file when it is loaded and each time it is finished, as Caffe does; the draws come
    from a generator seeded from the net's, so a `random_seed` repeats them (Caffe's
    std::random_shuffle does not follow it). `get_state()/set_state()` carry the file order,
    the position and the row order, so a resumed run reads the same rows as an unbroken one.
    A `transform_param` is refused, as in Caffe: write the data preprocessed.

    In TRAIN under data-parallel training, each process reads its share of every global
    batch (caffelite.data.shard); with `shuffle` the ranks' nets must share a seed so that
    they permute alike. A TEST net reads whole batches.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.hdf5_data_param
        if self.layer_param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform its data (Caffe refuses a "
                             "transform_param); write the arrays preprocessed")
        if not param.source:
            raise self.error("hdf5_data_param.source is empty; name a text file listing the "
                             ".h5 files")
        if param.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be a positive number of rows")
        self.h5py = import_h5py(self.error)
        self.batch_size = int(param.batch_size)
        self.source = param.source
        self.shuffle = bool(param.shuffle)
        self.files = read_file_list(param.source, self.error)
        self.top_names = list(self.layer_param.top)
        self.row_shapes = None  # each top's row shape, fixed by the first file loaded
        self.shuffle_rng = (np.random.default_rng(int(self.rng.integers(2**63)))
                            if self.shuffle else None)
        self.order = np.arange(len(self.files))
        if self.shuffle:
            self.shuffle_rng.shuffle(self.order)
        self.file_index = 0
        self._load(self.order[0])
        self.row_shapes = [array.shape[1:] for array in self.arrays]

    # -- files ------------------------------------------------------------------------------
    def _load(self, file_number, shuffle_rows=True):
        """Read every top's dataset of one file whole; the row order starts in file order
        (permuted when shuffling)."""
        path = self.files[file_number]
        try:
            with self.h5py.File(path, "r") as f:
                self.arrays = [self._dataset(f, path, name) for name in self.top_names]
        except OSError as exc:
            raise self.error(f"{path} is not a readable HDF5 file ({exc})") from None
        counts = [len(array) for array in self.arrays]
        if len(set(counts)) > 1:
            listing = ", ".join(f"'{n}' {c}" for n, c in zip(self.top_names, counts))
            raise self.error(f"{path}: the datasets have different row counts ({listing}); "
                             "every top's dataset needs one row per example")
        if counts[0] == 0:
            raise self.error(f"{path}: the datasets hold no rows")
        if self.row_shapes is not None:
            for name, array, shape in zip(self.top_names, self.arrays, self.row_shapes):
                if array.shape[1:] != shape:
                    raise self.error(f"{path}: dataset '{name}' has rows of shape "
                                     f"{array.shape[1:]}; the first file's were {shape}")
        self.file_rows = counts[0]
        self.rows = np.arange(self.file_rows)
        if self.shuffle and shuffle_rows:
            self.shuffle_rng.shuffle(self.rows)
        self.row = 0

    def _dataset(self, f, path, name):
        if name not in f:
            have = sorted(k for k in f.keys() if isinstance(f[k], self.h5py.Dataset))
            raise self.error(f"{path} has no dataset '{name}' for the top of that name (it has "
                             f"{have}); each top reads the dataset named like it")
        dataset = f[name]
        if not isinstance(dataset, self.h5py.Dataset):
            raise self.error(f"{path}: '{name}' is a group, not a dataset")
        kind = dataset.dtype.kind
        if kind not in "fiub" or dataset.ndim < 1:
            raise self.error(f"{path}: dataset '{name}' is {dataset.dtype} of shape "
                             f"{dataset.shape}; HDF5Data reads numeric arrays with a row axis")
        return np.asarray(dataset[()], dtype=self.dtype)

    # -- the row stream ---------------------------------------------------------------------
    def _end_of_file(self):
        """Caffe's Next() at a file end: the next file (the list reshuffled at each pass),
        then a fresh row order."""
        if len(self.files) > 1:
            self.file_index += 1
            if self.file_index == len(self.files):
                self.file_index = 0
                if self.shuffle:
                    self.shuffle_rng.shuffle(self.order)
            self._load(self.order[self.file_index])
        self.row = 0
        if self.shuffle:
            self.shuffle_rng.shuffle(self.rows)

    def _advance(self, count, out=None, start=0):
        """Move `count` rows on; when `out` (the tops' arrays) is given, copy them there from
        row `start` on."""
        while count > 0:
            take = min(count, self.file_rows - self.row)
            if out is not None:
                rows = self.rows[self.row:self.row + take]
                for target, array in zip(out, self.arrays):
                    target[start:start + take] = array[rows]
                start += take
            self.row += take
            count -= take
            if self.row == self.file_rows:
                self._end_of_file()

    # -- the contract -----------------------------------------------------------------------
    def reshape(self, bottom, top):
        for blob, shape in zip(top, self.row_shapes):
            blob.reshape((self.batch_size,) + shape)

    def forward(self, bottom, top):
        first, step = batch_offsets(self.batch_size) if self.phase == TRAIN else \
            (0, self.batch_size)
        self._advance(first)
        self._advance(self.batch_size, out=[blob.data for blob in top])
        self._advance(step - first - self.batch_size)

    def get_state(self):
        return {"order": [int(k) for k in self.order], "file_index": int(self.file_index),
                "row": int(self.row), "rows": self.rows.astype(np.int64),
                "shuffle_rng": self.shuffle_rng.bit_generator.state if self.shuffle else None}

    def set_state(self, state):
        order = np.asarray(state["order"], dtype=np.int64)
        if sorted(order.tolist()) != list(range(len(self.files))):
            raise ValueError(f"the saved file order {order.tolist()} does not fit the "
                             f"{len(self.files)} files of {self.source}")
        self.order, self.file_index = order, int(state["file_index"])
        self._load(self.order[self.file_index], shuffle_rows=False)
        rows = np.asarray(state["rows"], dtype=np.int64)
        if not np.array_equal(np.sort(rows), np.arange(self.file_rows)):
            raise ValueError(f"the saved row order does not fit the {self.file_rows} rows of "
                             f"{self.files[self.order[self.file_index]]}")
        self.rows, self.row = rows, int(state["row"])
        if self.shuffle and state.get("shuffle_rng") is not None:
            self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
