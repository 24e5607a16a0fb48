"""Server side: turn the clients' uplink messages for one layer into the global layer.

HM-like: ``E_k^-1 = I / alpha_k + Z_k^T Z_k`` and the ``I / alpha_k = m_k eps2 / d`` add up
to ``I / alpha``, so ``E = (sum_k E_k^-1)^-1`` exactly (likewise each ``C_j``, over the
clients that hold class j). CM-based: ``sum_k W_kj W_kj^T`` is the global class Gram matrix
(exactly at full rank), from which E and C_j follow by their definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._errors import LoLaFLError
from ._linalg import spd_inverse
from ._validation import as_rank, as_scheme, require_all_classes
from .layer import LayerParams, params_from_grams
from .messages import CMMessage, HMMessage
from .statistics import LayerStatistics


def aggregate(
    stats_list: Sequence[LayerStatistics], scheme: str = "hm", rank: int | None = None
) -> LayerParams:
    """The global layer from the clients' statistics, through the uplink of ``scheme``.

    Args:
        stats_list: one :class:`LayerStatistics` per client (same J, d and eps2).
        scheme: "hm" (clients send their local E_k, C_kj; exact) or "cm" (clients send
            rank-``rank`` factors of their class Gram matrices; exact at full rank).
        rank: factor rank for "cm"; None sends full rank.

    Example: ``aggregate([layer_statistics(Z1, y1, J, .1), layer_statistics(Z2, y2, J, .1)])``
    equals ``layer_params(vstack(Z1, Z2), concat(y1, y2), J, .1)``.
    """
    scheme = as_scheme(scheme)
    rank = as_rank(rank, scheme)
    if not stats_list or not all(isinstance(s, LayerStatistics) for s in stats_list):
        raise LoLaFLError("stats_list must be a non-empty sequence of LayerStatistics")
    return aggregate_messages([s.message(scheme, rank) for s in stats_list])


def aggregate_messages(messages: Sequence[HMMessage] | Sequence[CMMessage]) -> LayerParams:
    """The global layer from uplink messages, all of one scheme."""
    if messages and all(isinstance(msg, HMMessage) for msg in messages):
        return _aggregate_hm(messages)  # type: ignore[arg-type]
    if messages and all(isinstance(msg, CMMessage) for msg in messages):
        return _aggregate_cm(messages)  # type: ignore[arg-type]
    raise LoLaFLError(
        "messages must be a non-empty sequence of HMMessage or of CMMessage (not mixed)"
    )


def _aggregate_hm(messages: Sequence[HMMessage]) -> LayerParams:
    counts = _total_counts(messages)
    d = messages[0].E.shape[0]
    if any(msg.E.shape != (d, d) for msg in messages):
        raise LoLaFLError(f"clients disagree on the feature dimension (first has d={d})")
    E_inv = np.zeros((d, d))
    C_inv = np.zeros((len(counts), d, d))
    for msg in messages:
        E_inv += spd_inverse(msg.E)
        for j, C_kj in zip(np.flatnonzero(msg.counts), msg.C, strict=True):
            C_inv[j] += spd_inverse(C_kj)
    return LayerParams(
        E=spd_inverse(E_inv),
        C=np.stack([spd_inverse(c) for c in C_inv]),
        gamma=counts / counts.sum(),
    )


def _aggregate_cm(messages: Sequence[CMMessage]) -> LayerParams:
    counts = _total_counts(messages)
    eps2 = {msg.eps2 for msg in messages}
    if len(eps2) != 1:
        raise LoLaFLError(f"clients disagree on eps2: {sorted(eps2)}")
    d = messages[0].factors.shape[0]
    if any(msg.factors.shape[0] != d for msg in messages):
        raise LoLaFLError(f"clients disagree on the feature dimension (first has d={d})")
    grams = np.zeros((len(counts), d, d))
    for msg in messages:
        for j, W in enumerate(msg.class_factors()):
            grams[j] += W @ W.T
    return params_from_grams(grams, counts, eps2.pop())


def _total_counts(messages: Sequence[HMMessage] | Sequence[CMMessage]) -> np.ndarray:
    """Global class counts; every class must be held by some client."""
    shapes = {msg.counts.shape for msg in messages}
    if len(shapes) != 1:
        raise LoLaFLError(f"clients disagree on the number of classes: {sorted(shapes)}")
    return require_all_classes(np.sum([msg.counts for msg in messages], axis=0))
