"""Input checks shared by the mechanisms: each failure names the argument and what is allowed."""

from __future__ import annotations

import math

import numpy as np


class AuctionError(ValueError):
    """Raised for bad auction input (shapes, signs, unknown mechanism names)."""


Range = tuple[float, float]  # (smallest, largest) entry of a checked array


def _within(arr: np.ndarray, low: float, *, closed: bool) -> Range | None:
    """``(min, max)`` of ``arr`` when every entry is finite and ``>= low`` (``closed``) or
    ``> low``, else None; ``(inf, -inf)`` for an empty array.

    Two reductions and no (A, n) boolean temporaries: this check runs once per batch over
    every bid, and the engine reuses the range it returns. A NaN anywhere makes ``min`` NaN,
    which fails both comparisons.
    """
    if arr.size == 0:
        return (math.inf, -math.inf)
    lo, hi = float(arr.min()), float(arr.max())
    return (lo, hi) if (lo >= low if closed else lo > low) and hi < math.inf else None


def bid_matrix_range(bids: object) -> tuple[np.ndarray, Range]:
    """:func:`as_bid_matrix` and the bids' ``(min, max)``, from the same two reductions."""
    arr = np.asarray(bids, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise AuctionError(
            f"bids must have shape (auctions, bidders) with at least one bidder, got {arr.shape}"
        )
    found = _within(arr, 0.0, closed=True)
    if found is None:
        raise AuctionError("bids must be finite and >= 0 (per-click amounts)")
    return arr, found


def as_bid_matrix(bids: object) -> np.ndarray:
    """Return ``bids`` as a float64 (auctions, bidders) array of finite, non-negative values."""
    return bid_matrix_range(bids)[0]


def quality_range(quality: object, shape: tuple[int, int]) -> tuple[np.ndarray | None, Range]:
    """Broadcast ``quality`` to ``shape`` (every entry finite and > 0) and return its
    ``(min, max)``; ``(None, (1, 1))`` for no quality."""
    if quality is None:
        return None, (1.0, 1.0)
    arr = np.asarray(quality, dtype=np.float64)
    # Checked before broadcasting: an (n,) quality is n values, not A x n.
    found = _within(arr, 0.0, closed=False)
    if found is None:
        raise AuctionError("quality must be finite and > 0 (e.g. a predicted CTR)")
    if arr.shape == shape:  # nothing to broadcast (broadcast_to costs microseconds)
        return arr, found
    try:
        return np.broadcast_to(arr, shape), found
    except ValueError:
        raise AuctionError(
            f"quality must broadcast to the bids' shape {shape}, got {arr.shape}"
        ) from None


def as_reserve(reserve: object, n_auctions: int) -> np.ndarray:
    """Return the reserve per auction, shape (auctions,), finite and >= 0."""
    if type(reserve) in (float, int):  # the common scalar: no array checks, no broadcast
        if not 0 <= reserve < math.inf:
            raise AuctionError("reserve must be finite and >= 0 (a per-click price)")
        return np.full(n_auctions, float(reserve))
    arr = np.asarray(reserve, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n_auctions):
        raise AuctionError(
            f"reserve must be a scalar or one value per auction ({n_auctions}), got {arr.shape}"
        )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise AuctionError("reserve must be finite and >= 0 (a per-click price)")
    return np.broadcast_to(arr, (n_auctions,))


_ONE_SLOT = np.ones(1)
_ONE_SLOT.setflags(write=False)  # shared by every call: nobody may change it


def as_slot_ctrs(slot_ctrs: object) -> np.ndarray:
    """Return slot CTRs as a (slots,) array: finite, positive and non-increasing."""
    if slot_ctrs is None:
        return _ONE_SLOT
    arr = np.asarray(slot_ctrs, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise AuctionError(f"slot_ctrs must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr <= 0).any():
        raise AuctionError("slot_ctrs must be finite and > 0")
    if (np.diff(arr) > 0).any():
        raise AuctionError("slot_ctrs must be non-increasing (top slot first)")
    return arr


def as_rng(rng: np.random.Generator | int | np.random.SeedSequence | None) -> np.random.Generator:
    """Accept a Generator, a seed or a SeedSequence; ``None`` draws fresh OS entropy."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
