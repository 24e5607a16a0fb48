"""Named numpy arrays to and from Flower's ArrayRecord (only the Flower apps import this)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord


def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord holding ``arrays`` under their names."""
    return ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The named numpy arrays of ``record``."""
    return {name: array.numpy() for name, array in record.items()}
