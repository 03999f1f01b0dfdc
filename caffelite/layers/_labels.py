"""How loss and accuracy layers name a label that is not a class index: as the bottom holds
it. Cast to int64 first, a NaN label would read as -9223372036854775808."""
import math

import numpy as np


def bad_label(raw, bad, limit):
    """The message for the first label where `bad` (a mask shaped like the cast labels) is
    set, `raw` being the label bottom's data and [0, limit) the class indices."""
    value = float(raw.reshape(bad.shape)[bad][0])
    if math.isnan(value):
        return (f"label NaN is not a class index in [0, {limit}) (the data source or a layer "
                "below produced a NaN label)")
    if math.isinf(value):
        return f"label {value} is not a class index in [0, {limit})"
    return f"label {value:g} out of range [0, {limit})"


def class_indices(values):
    """Labels cast to int64 class indices. A NaN or infinite label casts to a nonsense index
    that the range check then reports (bad_label): without NumPy's warning on the cast."""
    with np.errstate(invalid="ignore"):
        return values.astype(np.int64)
