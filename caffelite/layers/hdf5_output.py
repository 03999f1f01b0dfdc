"""HDF5Output: writes bottom 0 as dataset `data` and bottom 1 as `label` of an .h5 file."""
import numpy as np

from ..layer import Layer
from ..registry import register_layer
from .hdf5_data import import_h5py


def legacy_shape(shape):
    """Caffe's 4-D (num, channels, height, width) of a blob: missing axes count 1."""
    return tuple(shape) + (1,) * (4 - len(shape))


@register_layer("HDF5Output")
class HDF5OutputLayer(Layer):
    """Two bottoms, no tops: saves the batch to `hdf5_output_param.file_name`.

    The file is created (truncated) at setup. A forward writes bottom 0 as dataset `data`
    and bottom 1 as `label`, in the net's float type, with Caffe's legacy 4-D shapes
    (num, channels, height, width; a (N,) label is stored (N, 1, 1, 1)). After one forward
    the file holds what Caffe writes. Caffe aborts on a second forward (its datasets exist
    already); here each later forward appends its rows to both datasets, so a test run of
    many iterations saves every batch. The file is opened, written and closed in each
    forward, so it is complete on disk between forwards. No gradient flows back.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 0

    def layer_setup(self, bottom, top):
        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty; name the .h5 file to write")
        self.h5py = import_h5py(self.error)
        self.rows = 0
        try:
            with self.h5py.File(self.file_name, "w"):
                pass  # Caffe truncates the file when the net is built
        except OSError as exc:
            raise self.error(f"cannot create {self.file_name} ({exc})") from None

    def reshape(self, bottom, top):
        for k, blob in enumerate(bottom):
            if blob.data.ndim > 4:
                raise self.error(f"bottom {k} has {blob.data.ndim} axes; HDF5Output writes "
                                 "Caffe's 4-D (num, channels, height, width) datasets")
        num = [legacy_shape(blob.shape)[0] for blob in bottom]
        if num[0] != num[1]:
            raise self.error(f"the data bottom has {num[0]} rows and the label bottom "
                             f"{num[1]}; they must match")

    def forward(self, bottom, top):
        arrays = {name: np.asarray(blob.data, self.dtype).reshape(legacy_shape(blob.shape))
                  for name, blob in zip(("data", "label"), bottom)}
        try:
            with self.h5py.File(self.file_name, "a") as f:
                if self.rows:
                    self._check_appendable(f, arrays)
                for name, values in arrays.items():
                    self._write(f, name, values)
        except OSError as exc:
            raise self.error(f"cannot write {self.file_name} ({exc})") from None
        self.rows += len(arrays["data"])

    def _check_appendable(self, f, arrays):
        for name, values in arrays.items():
            if name not in f:
                raise self.error(f"{self.file_name} lost its '{name}' dataset since the last "
                                 "forward")
            if f[name].shape[1:] != values.shape[1:]:
                raise self.error(f"{self.file_name}: '{name}' rows are {values.shape[1:]} in "
                                 f"this forward, {f[name].shape[1:]} before; HDF5Output "
                                 "appends rows of one shape")

    def _write(self, f, name, values):
        if self.rows == 0:
            if name in f:
                del f[name]
            f.create_dataset(name, data=values, maxshape=(None,) + values.shape[1:],
                             chunks=True)
        else:
            dataset = f[name]
            start = dataset.shape[0]
            dataset.resize(start + len(values), axis=0)
            dataset[start:] = values

    def backward(self, top, propagate_down, bottom):
        pass  # an output: nothing to propagate
