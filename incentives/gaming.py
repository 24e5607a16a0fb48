"""Defences of a round's payments against gaming: claims capped, lengths ignored, copies
grouped, identities not counted.

What a client controls is its update, its ``num-examples`` claim and how many identities it
uses. ``RoundPayer`` values and pays a round through these steps, so that none pays:

1. :func:`capped_claims`: a claim counts at most the examples the node was assigned
   (claiming 1e6 examples neither outweighs nor zeroes the others).
2. :func:`duplicate_groups` on the updates' directions (:func:`normalised` to norm 1):
   updates within ``tolerance`` x the round's median pairwise distance of each other are one
   player of the valuation game (their mean direction, the largest claim of the group); the
   group's pay is split equally among its members, so a copier takes its share from the
   original and adds nothing (copying earns what the original loses, at most).
3. Every player's update has the same norm before it is valued: a norm the server sets
   (e.g. the DP clipping norm), else :func:`median_norm` (norm clipping taken to its limit:
   an update's length earns nothing, its direction does; with a set norm scaling one's update
   changes no value, with the median only a client below it that scales itself above it
   moves it, by one rank).
4. :func:`per_example_shares`: replication-robust payment. The round's tokens
   (``RewardPolicy.round_total``: one concave price on the round's total gain, not one per
   identity) are paid per claimed example to every group whose value is positive. A client
   that splits its data over k identities claims the same examples in all and, by Shapley's
   efficiency, leaves the round's gain unchanged: it earns what it earned as one (Ohrimenko,
   Tople & Tschiatschek 2019 and Han et al. 2022 show per-identity Shapley payments reward
   replication; a concave pay per identity and a floor per identity do too). What is given
   up: two useful updates with equal claims earn the same, however different their values.

Example:
    >>> import numpy as np
    >>> ups = [{"w": np.array([3.0, 4.0])}, {"w": np.array([6.0, 8.0])}, {"w": np.zeros(2)}]
    >>> norms(normalised(ups, 1.0)).tolist()
    [1.0, 1.0, 0.0]
    >>> groups = duplicate_groups(normalised(ups, 1.0), 0.1)
    >>> groups, median_norm(ups, groups)
    ([[0, 1], [2]], 2.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._errors import IncentiveError

Update = Mapping[str, np.ndarray]


def capped_claims(claims: Sequence[float], caps: Sequence[float] | None) -> np.ndarray:
    """(n,) ``min(claim, cap)``; each claim finite and >= 0, each cap >= 0 (None: no caps).

    Raises:
        IncentiveError: a claim is negative or not finite, or caps has another length.
    """
    w = np.asarray(claims, dtype=float)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
        raise IncentiveError(f"claims must be finite numbers >= 0, got {list(claims)}")
    if caps is None:
        return w
    c = np.asarray(caps, dtype=float)
    if c.shape != w.shape or np.isnan(c).any() or (c < 0).any():
        raise IncentiveError(f"caps must be {w.size} numbers >= 0 (inf: none), got {list(caps)}")
    return np.minimum(w, c)


def _flat(update: Update) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(update[k], dtype=float)) for k in sorted(update)])


def norms(updates: Sequence[Update]) -> np.ndarray:
    """(n,) each update's L2 norm over all its arrays."""
    return np.array([np.linalg.norm(_flat(u)) for u in updates])


def normalised(updates: Sequence[Update], norm: float) -> list[dict[str, np.ndarray]]:
    """Every update rescaled to L2 norm ``norm`` (>= 0); zero updates stay zero."""
    if not 0 <= norm < np.inf:
        raise IncentiveError(f"norm must be a finite number >= 0, got {norm}")
    n = norms(updates)
    scale = np.divide(norm, n, out=np.zeros_like(n), where=n > 0)
    return [
        {k: np.asarray(v, dtype=float) * s for k, v in u.items()}
        for u, s in zip(updates, scale, strict=True)
    ]


def median_norm(updates: Sequence[Update], groups: Sequence[Sequence[int]]) -> float:
    """The median over groups of each group's smallest non-zero member norm (0 if none): a
    copy joining a group, or a client scaling an update above the median, leaves it as is."""
    n = norms(updates)
    per_group = [min((n[i] for i in g if n[i] > 0), default=0.0) for g in groups]
    return float(np.median(per_group)) if per_group else 0.0


def duplicate_groups(updates: Sequence[Update], tolerance: float) -> list[list[int]]:
    """Groups of near-duplicate updates, in order of their first member.

    Two updates are near-duplicates when their L2 distance is at most ``tolerance`` x the
    median distance between the round's updates (linked transitively); identical updates
    always are. ``tolerance`` in [0, 1).
    """
    if not 0 <= tolerance < 1:
        raise IncentiveError(f"tolerance must be in [0, 1), got {tolerance}")
    flat = np.stack([_flat(u) for u in updates])
    dist = np.linalg.norm(flat[:, None, :] - flat[None, :, :], axis=-1)
    upper = dist[np.triu_indices(len(updates), k=1)]
    limit = tolerance * float(np.median(upper)) if upper.size else 0.0
    root = list(range(len(updates)))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist <= limit, k=1)), strict=True):
        root[max(find(i), find(j))] = min(find(i), find(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(updates)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def per_example_shares(
    group_values: np.ndarray, groups: Sequence[Sequence[int]], claims: np.ndarray
) -> np.ndarray:
    """(n,) each client's share of the round's tokens (sums to 1, or all 0 when no group has
    a positive value): a group with positive value is paid for its largest claim, split
    equally among its members; claims are per example."""
    shares = np.zeros(len(claims))
    for value, members in zip(group_values, groups, strict=True):
        if value > 0:
            shares[list(members)] = claims[list(members)].max() / len(members)
    total = shares.sum()
    return shares / total if total > 0 else shares
