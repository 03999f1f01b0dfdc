"""Caffe's files: configs (prototxt/YAML/JSON) with their errors and upgrades, and binary
I/O (.caffemodel, .binaryproto)."""
