"""The schema: caffelite_pb2 (generated from proto/caffelite.proto), also importable as
`caffe_pb2`, so pycaffe's `from caffe.proto import caffe_pb2` needs only the package rename."""
