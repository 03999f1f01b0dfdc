"""Save/load time of 54.5 M float32 weights (CaffeNet's fc6 + fc7 shapes) as .caffemodel and as
.caffemodel.h5: best of 3 each. Run: python scripts/bench_hdf5.py [DIR]"""
import os
import sys
import tempfile
import time

import numpy as np
from google.protobuf import text_format

import caffelite as caffe
from caffelite.proto import caffe_pb2

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 9216 } } }
layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6"
        inner_product_param { num_output: 4096 } }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 4096 } }
"""


def best_of(fn, *args, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    if len(sys.argv) > 1:
        run(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as directory:
            run(directory)


def run(directory):
    net = caffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffe.TEST)
    rng = np.random.default_rng(0)
    for blob in net.learnable_params:
        blob.data[...] = rng.random(blob.shape, dtype=np.float32)
    binary = os.path.join(directory, "w.caffemodel")
    h5 = os.path.join(directory, "w.caffemodel.h5")
    count = sum(b.data.size for b in net.learnable_params)
    print(f"{count / 1e6:.1f} M parameters")
    print(f"Net.save       (.caffemodel)    {best_of(net.save, binary):.2f} s")
    print(f"Net.save_hdf5  (.caffemodel.h5) {best_of(net.save_hdf5, h5):.2f} s")
    print(f"Net.copy_from  (.caffemodel)    {best_of(net.copy_from, binary):.2f} s")
    print(f"Net.load_hdf5  (.caffemodel.h5) {best_of(net.load_hdf5, h5):.2f} s")
    print(f"sizes: {os.path.getsize(binary)} and {os.path.getsize(h5)} bytes")
    os.remove(binary)
    os.remove(h5)


if __name__ == "__main__":
    main()
