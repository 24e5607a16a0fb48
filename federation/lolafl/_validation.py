"""Input checks shared by the modules: each failure names the argument and what is allowed."""

from __future__ import annotations

import math

import numpy as np

from ._errors import LoLaFLError

UNIT_NORM_TOL = 1e-6
SCHEMES = ("hm", "cm")


def as_features(Z: object, name: str = "Z") -> np.ndarray:
    """Return ``Z`` as a float64 (m, d) array of finite values with m, d >= 1."""
    arr = np.asarray(Z, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise LoLaFLError(f"{name} must have shape (m, d) with m, d >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise LoLaFLError(f"{name} must be finite")
    return arr


def as_unit_rows(Z: object, name: str = "Z") -> np.ndarray:
    """Return ``Z`` as (m, d) float64 whose rows have norm 1 (within 1e-6)."""
    arr = as_features(Z, name)
    gap = float(np.abs(np.linalg.norm(arr, axis=1) - 1.0).max())
    if gap > UNIT_NORM_TOL:
        raise LoLaFLError(
            f"{name} rows must be unit-norm (one sample per row); the largest |norm - 1| is "
            f"{gap:.3g}: normalize first, e.g. with federation.lolafl.normalize_rows"
        )
    return arr


def normalize_rows(Z: object) -> np.ndarray:
    """Scale each row of ``Z`` (m, d) to norm 1; rows of zeros are an error.

    Example: ``normalize_rows([[3.0, 4.0]])`` gives ``[[0.6, 0.8]]``.
    """
    arr = as_features(Z)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise LoLaFLError("Z has all-zero rows, which have no direction to normalize")
    return arr / norms


def as_labels(labels: object, m: int, num_classes: int) -> np.ndarray:
    """Return ``labels`` as an int64 (m,) array with values in [0, num_classes)."""
    as_count(num_classes, "num_classes")
    arr = np.asarray(labels)
    if arr.shape != (m,):
        raise LoLaFLError(f"labels must have shape ({m},), one per row of Z, got {arr.shape}")
    integral = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr))
    )
    if arr.size and not integral:
        raise LoLaFLError("labels must be integers (class indices)")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise LoLaFLError(
            f"labels must lie in [0, num_classes={num_classes}), got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr


def as_count(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise LoLaFLError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_positive(value: object, name: str) -> float:
    """Return ``value`` as a finite float > 0."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LoLaFLError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise LoLaFLError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def as_scheme(scheme: object) -> str:
    """Return ``scheme`` if it names an aggregation scheme ("hm" or "cm")."""
    if scheme not in SCHEMES:
        raise LoLaFLError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return str(scheme)


def as_rank(rank: object, scheme: str) -> int | None:
    """Return the covariance rank: None (full) or an int >= 1, and only for scheme "cm"."""
    if rank is None:
        return None
    if scheme != "cm":
        raise LoLaFLError(f"rank applies only to scheme='cm' (got scheme={scheme!r}, rank={rank})")
    return as_count(rank, "rank")


def require_all_classes(counts: np.ndarray) -> np.ndarray:
    """Return global class ``counts`` (J,) as int64 if every class has a sample."""
    counts = np.asarray(counts, dtype=np.int64)
    missing = np.flatnonzero(counts <= 0)
    if missing.size:
        raise LoLaFLError(
            f"classes {missing.tolist()} have no samples (counts {counts.tolist()}): every "
            "class needs at least one sample across all clients; relabel to the classes present"
        )
    return counts
