"""pycaffe's `caffe.detector` module (the code lives in pycaffe/detector.py)."""
from .pycaffe.detector import Detector  # noqa: F401
