"""Data sources and mean files that cannot be used: a clear error naming the file and why."""
import numpy as np
import pytest

from caffelite.errors import CaffeliteError
from caffelite.formats.config import parse_net_text
from caffelite.net import Net


def _data_net(source, transform=""):
    return parse_net_text(
        f'layer {{ name: "data" type: "Data" top: "x" top: "y" data_param {{ source: "{source}" '
        f'batch_size: 2 }} transform_param {{ {transform} }} }}')


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, images=np.array([{"a": 1}, None], dtype=object), labels=np.zeros(2))
    with pytest.raises(CaffeliteError, match=r"layer 'data' \(Data\).*objects\.npz: 'images' "
                                             r"is an object array.*allow_pickle=False"):
        Net(_data_net(path), phase="TRAIN")


def test_npz_of_strings_is_refused(tmp_path):
    path = tmp_path / "strings.npz"
    np.savez(path, images=np.zeros((2, 1, 2, 2), np.uint8), labels=np.array(["a", "b"]))
    with pytest.raises(CaffeliteError, match=r"strings\.npz: 'labels' holds <U1 values; "
                                             r"expected numbers"):
        Net(_data_net(path), phase="TRAIN")


@pytest.mark.timeout(30)
def test_mean_file_that_is_a_device(tmp_path):
    with pytest.raises(CaffeliteError, match=r"layer 'data' \(Data\).*mean_file: /dev/zero is "
                                             r"not a regular file"):
        Net(_data_net("caffelite://mnist10k/train", 'mean_file: "/dev/zero"'), phase="TRAIN")


def test_mean_file_that_is_a_directory(tmp_path):
    with pytest.raises(CaffeliteError, match=rf"mean_file: {tmp_path} is a directory"):
        Net(_data_net("caffelite://mnist10k/train", f'mean_file: "{tmp_path}"'), phase="TRAIN")
