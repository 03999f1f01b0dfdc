"""Time HDF5Data and WindowData forwards on synthetic data (CPU time, median of repeats).

    python scripts/bench_data_layers.py [--repeat 20]

HDF5Data: 4 files of 2,500 rows of (3, 32, 32) float32 plus labels, batch 100, with and
without shuffle. WindowData: BVLC's pascal finetune settings (batch 128, crop 227,
context_pad 16, mirror, a 256² mean file) over 8 PNG images of 500×375 pixels, with and
without cache_images.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

import caffelite.layers  # noqa: F401  (registers the layer types)
from caffelite.blob import Blob
from caffelite.formats.binary import write_binaryproto
from caffelite.proto import caffelite_pb2 as pb
from caffelite.registry import LAYERS


def layer(text, tops):
    param = text_format.Parse(text, pb.LayerParameter())
    param.name = "bench"
    instance = LAYERS.get(param.type)(param, rng=np.random.default_rng(0))
    top = [Blob() for _ in range(tops)]
    instance.setup([], top)
    return instance, top


def timed(instance, top, repeat):
    """(median, mean) CPU seconds of the process per forward: the layers run on one thread,
    and CPU time is less disturbed than wall time on a shared machine."""
    instance.forward([], top)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.process_time()
        instance.forward([], top)
        times.append(time.process_time() - start)
    return statistics.median(times), statistics.mean(times)


def hdf5_files(root):
    import h5py

    rng = np.random.default_rng(0)
    names = []
    for k in range(4):
        with h5py.File(root / f"part{k}.h5", "w") as f:
            f["data"] = rng.standard_normal((2500, 3, 32, 32)).astype(np.float32)
            f["label"] = rng.integers(0, 10, 2500).astype(np.float32)
        names.append(f"part{k}.h5")
    (root / "list.txt").write_text("\n".join(names) + "\n")
    return root / "list.txt"


def window_files(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for k in range(8):
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(
            root / f"im{k}.png")
        lines += [f"# {k}", str(root / f"im{k}.png"), "3 375 500", "4",
                  "1 0.8 20 30 300 350", "2 0.6 200 100 499 374", "0 0.1 0 0 120 90",
                  "0 0.3 250 10 480 200"]
    (root / "windows.txt").write_text("\n".join(lines) + "\n")
    write_binaryproto(rng.uniform(0, 255, (1, 3, 256, 256)).astype(np.float32),
                      root / "mean.binaryproto")
    return root / "windows.txt", root / "mean.binaryproto"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = hdf5_files(root)
        for shuffle in ("false", "true"):
            text = (f'type: "HDF5Data" top: "data" top: "label" hdf5_data_param '
                    f'{{ source: "{source}" batch_size: 100 shuffle: {shuffle} }}')
            seconds, mean = timed(*layer(text, 2), 100)  # one pass over the 10,000 rows
            print(f"HDF5Data batch 100 (3x32x32), shuffle {shuffle}: median {seconds * 1e3:.2f} "
                  f"ms per forward, mean {mean * 1e3:.2f} ms (1 batch in 25 loads a file)")
        windows, mean = window_files(root)
        for cache in ("false", "true"):
            text = (f'type: "WindowData" top: "data" top: "label" transform_param {{ '
                    f'mirror: true crop_size: 227 mean_file: "{mean}" }} window_data_param {{ '
                    f'source: "{windows}" batch_size: 128 fg_threshold: 0.5 bg_threshold: 0.5 '
                    f'fg_fraction: 0.25 context_pad: 16 crop_mode: "warp" '
                    f'cache_images: {cache} }}')
            seconds, _ = timed(*layer(text, 2), max(3, args.repeat // 4))
            print(f"WindowData batch 128 (3x227x227), cache_images {cache}: "
                  f"{seconds * 1e3:.0f} ms per forward (median)")


if __name__ == "__main__":
    main()
