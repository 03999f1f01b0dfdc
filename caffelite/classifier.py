"""pycaffe's `caffe.classifier` module (the code lives in pycaffe/classifier.py)."""
from .pycaffe.classifier import Classifier  # noqa: F401
