"""Combinatorial VCG with XOR bids, solved exhaustively (small instances: n <= 8 bidders).

Each bidder submits an XOR bid: a map from bundles (sets of items) to values, of which it may
win at most one. The allocation maximises the sum of winning bids over disjoint bundles; each
winner pays the Clarke pivot ``W*_{-i} - (W* - b_i(S_i))``, the welfare loss it imposes on the
others. Ties between optimal allocations are broken uniformly at random.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._validation import AuctionError, as_rng

MAX_BIDDERS = 8
_TOL = 1e-12

XorBid = Mapping[Iterable[Hashable] | Hashable, float]


@dataclass(frozen=True)
class CombinatorialOutcome:
    """Allocation and Clarke payments.

    Attributes:
        bundles: per bidder, the frozenset of items won, or None.
        payments: (n,) float, Clarke pivot payments (0 for losers).
        welfare: sum of the winning bids.
    """

    bundles: tuple[frozenset | None, ...]
    payments: np.ndarray
    welfare: float


def _parse(bids: Sequence[XorBid]) -> list[list[tuple[int, float, frozenset]]]:
    if len(bids) > MAX_BIDDERS:
        raise AuctionError(
            f"combinatorial_vcg is exhaustive and allows at most {MAX_BIDDERS} bidders, "
            f"got {len(bids)}"
        )
    items: dict[Hashable, int] = {}
    parsed: list[list[tuple[int, float, frozenset]]] = []
    for i, bid in enumerate(bids):
        options = []
        for bundle, value in bid.items():
            members = (
                frozenset(bundle)
                if isinstance(bundle, frozenset | set | tuple)
                else (frozenset([bundle]))
            )
            if not members:
                raise AuctionError(f"bidder {i} bids on an empty bundle")
            value = float(value)
            if not np.isfinite(value) or value < 0:
                raise AuctionError(f"bidder {i}: bundle values must be finite and >= 0")
            mask = 0
            for item in members:
                mask |= 1 << items.setdefault(item, len(items))
            options.append((mask, value, members))
        parsed.append(options)
    return parsed


def _optima(
    options: list[list[tuple[int, float, frozenset]]], skip: int | None
) -> tuple[float, list[tuple[int, ...]]]:
    """Best welfare and every allocation reaching it (choice index per bidder, -1 = nothing)."""
    best = -1.0
    found: list[tuple[int, ...]] = []

    def search(i: int, used: int, total: float, choice: tuple[int, ...]) -> None:
        nonlocal best, found
        if i == len(options):
            if total > best + _TOL:
                best, found = total, [choice]
            elif total >= best - _TOL:
                found.append(choice)
            return
        search(i + 1, used, total, (*choice, -1))
        if i == skip:
            return
        for c, (mask, value, _) in enumerate(options[i]):
            if value > 0 and not mask & used:
                search(i + 1, used | mask, total + value, (*choice, c))

    search(0, 0, 0.0, ())
    return best, found


def combinatorial_vcg(
    bids: Sequence[XorBid], *, rng: np.random.Generator | int | None = None
) -> CombinatorialOutcome:
    """VCG over XOR bids.

    Args:
        bids: per bidder, ``{bundle: value}``; a bundle is a tuple/set/frozenset of items or a
            single item.
        rng: seed or Generator for choosing among tied optimal allocations.

    Example:
        >>> out = combinatorial_vcg([{("a", "b"): 10}, {"a": 6}, {"b": 6}])
        >>> out.bundles[0], out.payments.tolist()
        (None, [0.0, 4.0, 4.0])
    """
    options = _parse(bids)
    welfare, optima = _optima(options, skip=None)
    choice = optima[0] if len(optima) == 1 else optima[as_rng(rng).integers(len(optima))]
    n = len(options)
    payments = np.zeros(n)
    bundles: list[frozenset | None] = [None] * n
    for i, c in enumerate(choice):
        if c < 0:
            continue
        _, value, members = options[i][c]
        bundles[i] = members
        without_i, _ = _optima(options, skip=i)
        payments[i] = max(0.0, without_i - (welfare - value))
    return CombinatorialOutcome(bundles=tuple(bundles), payments=payments, welfare=welfare)
