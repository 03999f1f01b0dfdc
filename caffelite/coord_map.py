"""pycaffe's `caffe.coord_map` (the code lives in pycaffe/coord_map.py)."""
from .pycaffe.coord_map import (  # noqa: F401
    PASS_THROUGH_LAYERS,
    AxisMismatchException,
    UndefinedMapException,
    compose,
    conv_params,
    coord_map,
    coord_map_from_to,
    crop,
    crop_params,
    inverse,
)
