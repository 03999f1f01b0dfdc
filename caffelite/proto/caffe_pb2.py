"""pycaffe's name for the generated schema module: this module *is* caffelite_pb2."""
import sys

from . import caffelite_pb2

sys.modules[__name__] = caffelite_pb2
