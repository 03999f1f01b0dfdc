#!/usr/bin/env python
"""Data layers over databases: the share of each training iteration spent waiting for data,
and peak memory while streaming a large JPEG database.

    python scripts/bench_data.py wait --nets lenet:64 cifar10_quick:100 --iters 200
    python scripts/bench_data.py imagenet --records 20000 --workdir /tmp/imagenet

`wait` trains BVLC's lenet_train_test / cifar10_quick_train_test (from ../shared, data paths
changed only) from LMDBs written in the work directory (the bundled digits; a synthetic
CIFAR-10 set in the official binary format through `caffelite data cifar10` and
`compute-image-mean`) and reports ms per iteration and the data wait (time forward spent
waiting on the prefetch thread) per iteration. `imagenet` writes an LMDB of encoded JPEG
Datums 3×256×256 (a few GB), then measures in child processes the peak RSS (VmHWM) of
(a) a Data layer with CaffeNet's transform (crop 227, mirror, mean file) streaming every
record at batch 256, against the same layer over an in-memory .npz, and (b) CaffeNet's
train_val net a few iterations from the LMDB, against the same from the .npz.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CAFFELITE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
EXAMPLES = os.path.join(SHARED, "caffe", "examples")


def peak_rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


# -- data wait ---------------------------------------------------------------------------------
def lenet_files(workdir):
    from caffelite.data.datasets import write_datums
    from caffelite.data.mnist import load_bundled

    for split in ("train", "test"):
        path = os.path.join(workdir, f"mnist_{split}_lmdb")
        if not os.path.exists(path):
            images, labels = load_bundled(f"mnist10k/{split}")
            write_datums(path, "lmdb", images[:, None], labels, "{:08d}")
    text = open(os.path.join(EXAMPLES, "mnist", "lenet_train_test.prototxt")).read()
    return text.replace("examples/mnist/", workdir + "/")


def cifar_files(workdir, per_file=2000):
    from caffelite.data.datasets import convert_cifar10
    from caffelite.data.tools import compute_image_mean, mean_blob_bytes

    if not os.path.exists(os.path.join(workdir, "cifar10_train_lmdb")):
        raw = os.path.join(workdir, "cifar-raw")
        os.makedirs(raw, exist_ok=True)
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
            records = rng.integers(0, 256, (per_file, 3073), dtype=np.uint8)
            records[:, 0] %= 10
            records.tofile(os.path.join(raw, name))
        convert_cifar10(raw, workdir, "lmdb")
        mean, _ = compute_image_mean(os.path.join(workdir, "cifar10_train_lmdb"))
        with open(os.path.join(workdir, "mean.binaryproto"), "wb") as f:
            f.write(mean_blob_bytes(mean))
    text = open(os.path.join(EXAMPLES, "cifar10", "cifar10_quick_train_test.prototxt")).read()
    return text.replace("examples/cifar10/", workdir + "/")


def measure_wait(name, batch, iters, workdir):
    import caffelite
    from caffelite.formats.config import parse_net_text
    from caffelite.proto import caffelite_pb2 as pb

    text = lenet_files(workdir) if name == "lenet" else cifar_files(workdir)
    text = text.replace("batch_size: 64", f"batch_size: {batch}") if name == "lenet" else \
        text.replace("batch_size: 100", f"batch_size: {batch}", 1)
    param = pb.SolverParameter(base_lr=0.001, momentum=0.9, weight_decay=5e-4,
                               lr_policy="fixed", max_iter=10**9, display=0, random_seed=1701,
                               snapshot_after_train=False)
    param.net_param.CopyFrom(parse_net_text(text))
    solver = caffelite.get_solver(param)
    data = [layer for layer in solver.net.layers if hasattr(layer, "data_wait")]
    solver.step(5)  # warm-up (and the prefetch queue's head start)
    waited = sum(layer.data_wait for layer in data)
    start = time.perf_counter()
    solver.step(iters)
    wall = time.perf_counter() - start
    waited = sum(layer.data_wait for layer in data) - waited
    return {"net": name, "batch": batch, "iters": iters, "ms_per_iter": 1e3 * wall / iters,
            "data_wait_ms_per_iter": 1e3 * waited / iters, "data_wait_percent":
            100 * waited / wall, "peak_rss_mb": peak_rss_mb()}


# -- ImageNet-shaped ---------------------------------------------------------------------------
CAFFENET = """
name: "CaffeNet"
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ mirror: true crop_size: 227 mean_file: "{mean}" }}
  data_param {{ source: "{source}" batch_size: {batch} backend: {backend} }} }}
"""
CAFFENET_BODY = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 96 kernel_size: 11 stride: 4
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm2" type: "LRN" bottom: "pool2" top: "norm2"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "conv3" type: "Convolution" bottom: "norm2" top: "conv3"
  convolution_param { num_output: 384 pad: 1 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
  convolution_param { num_output: 384 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu4" type: "ReLU" bottom: "conv4" top: "conv4" }
layer { name: "conv5" type: "Convolution" bottom: "conv4" top: "conv5"
  convolution_param { num_output: 256 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu5" type: "ReLU" bottom: "conv5" top: "conv5" }
layer { name: "pool5" type: "Pooling" bottom: "conv5" top: "pool5"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6"
  inner_product_param { num_output: 4096 weight_filler { type: "gaussian" std: 0.005 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
  inner_product_param { num_output: 4096 weight_filler { type: "gaussian" std: 0.005 } } }
layer { name: "relu7" type: "ReLU" bottom: "fc7" top: "fc7" }
layer { name: "drop7" type: "Dropout" bottom: "fc7" top: "fc7" }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8"
  inner_product_param { num_output: 1000 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
"""


def imagenet_files(workdir, records):
    """An LMDB of `records` JPEG Datums 256×256 (64 distinct noisy pictures, cycled), its mean,
    and an .npz of 64 decoded images for the in-memory comparison."""
    from caffelite.data.datum import encode_image, encoded_datum
    from caffelite.data.db import DBWriter
    from caffelite.data.tools import mean_blob_bytes

    path = os.path.join(workdir, "imagenet_lmdb")
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256]
    pictures = []
    for k in range(64):
        smooth = np.stack([(x * (k + 1) + y * c) % 256 for c in (1, 2, 3)])
        noisy = np.clip(smooth + rng.normal(0, 40, smooth.shape), 0, 255).astype(np.uint8)
        pictures.append(noisy)
    files = [encode_image(p, "jpg") for p in pictures]
    with DBWriter(path, "lmdb") as db:
        for i in range(records):
            db.put(f"{i:08d}", encoded_datum(files[i % 64], i % 1000).SerializeToString())
    with open(os.path.join(workdir, "mean.binaryproto"), "wb") as f:
        f.write(mean_blob_bytes(np.mean(pictures, axis=0).astype(np.float32)))
    np.savez(os.path.join(workdir, "imagenet64.npz"), images=np.stack(pictures),
             labels=np.arange(64) % 1000)
    return path


def run_imagenet_child(kind, workdir, batch, iters):
    import caffelite
    from caffelite.formats.config import parse_net_text
    from caffelite.proto import caffelite_pb2 as pb

    mean = os.path.join(workdir, "mean.binaryproto")
    if kind in ("npz", "stream-npz"):
        source, backend = os.path.join(workdir, "imagenet64.npz"), "LMDB"
    else:
        source, backend = os.path.join(workdir, "imagenet_lmdb"), "LMDB"
    head = CAFFENET.format(mean=mean, source=source, batch=batch, backend=backend)
    if kind.startswith("stream"):
        net = caffelite.Net(parse_net_text(head), phase=caffelite.TRAIN)
        start = time.perf_counter()
        for _ in range(iters):
            net.forward()
        wall = time.perf_counter() - start
        return {"kind": kind, "batch": batch, "iters": iters, "records_read": batch * iters,
                "seconds": wall, "peak_rss_mb": peak_rss_mb()}
    param = pb.SolverParameter(base_lr=0.01, momentum=0.9, lr_policy="fixed", max_iter=10**9,
                               display=0, random_seed=1701, snapshot_after_train=False)
    param.net_param.CopyFrom(parse_net_text(head + CAFFENET_BODY))
    solver = caffelite.get_solver(param)
    start = time.perf_counter()
    solver.step(iters)
    wall = time.perf_counter() - start
    return {"kind": kind, "batch": batch, "iters": iters, "seconds": wall,
            "loss": float(solver.smoothed_loss), "peak_rss_mb": peak_rss_mb()}


def child(args):
    """Run one measurement in a fresh process (its own VmHWM); returns the parsed JSON."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "child"] + args,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    wait = sub.add_parser("wait")
    wait.add_argument("--nets", nargs="*", default=["lenet:64", "cifar10_quick:100"])
    wait.add_argument("--iters", type=int, default=200)
    wait.add_argument("--workdir", default="/tmp/caffelite-bench-data")
    imagenet = sub.add_parser("imagenet")
    imagenet.add_argument("--records", type=int, default=20000)
    imagenet.add_argument("--train-batch", type=int, default=8)
    imagenet.add_argument("--train-iters", type=int, default=4)
    imagenet.add_argument("--workdir", default="/tmp/caffelite-bench-imagenet")
    one = sub.add_parser("child")
    one.add_argument("what")
    one.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.mode == "child":
        if args.what == "wait":
            name, batch, iters, workdir = args.rest
            result = measure_wait(name, int(batch), int(iters), workdir)
        else:
            workdir, batch, iters = args.rest
            result = run_imagenet_child(args.what, workdir, int(batch), int(iters))
        print(json.dumps(result))
        return
    if args.mode == "wait":
        os.makedirs(args.workdir, exist_ok=True)
        for entry in args.nets:
            name, _, batch = entry.partition(":")
            result = child(["wait", name, batch or "64", str(args.iters), args.workdir])
            print(f"{name} b{result['batch']}: {result['ms_per_iter']:.1f} ms/iter, data wait "
                  f"{result['data_wait_ms_per_iter']:.2f} ms/iter "
                  f"({result['data_wait_percent']:.2f}%), peak RSS {result['peak_rss_mb']:.0f} MB")
        return
    os.makedirs(args.workdir, exist_ok=True)
    start = time.perf_counter()
    path = imagenet_files(args.workdir, args.records)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"{path}: {args.records} JPEG Datums, {size / 2**30:.2f} GiB "
          f"({time.perf_counter() - start:.0f} s to write)")
    stream = child(["stream", args.workdir, "256", str(args.records // 256)])
    print(f"Data layer alone, batch 256, crop 227 + mirror + mean: {stream['records_read']} "
          f"records in {stream['seconds']:.0f} s, peak RSS {stream['peak_rss_mb']:.0f} MB")
    memory = child(["stream-npz", args.workdir, "256", "20"])
    print(f"The same Data layer over an in-memory .npz of 64 images, {memory['records_read']} "
          f"records: peak RSS {memory['peak_rss_mb']:.0f} MB")
    for kind in ("lmdb", "npz"):
        result = child([kind, args.workdir, str(args.train_batch), str(args.train_iters)])
        print(f"CaffeNet train_val from {kind}, batch {result['batch']}, {result['iters']} "
              f"iterations: {result['seconds']:.0f} s, peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
