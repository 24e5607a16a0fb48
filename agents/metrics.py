"""The project's one NDCG@k and one Precision@k (numpy only: no torch on this module's code path).

Both take ``scores`` and ``relevance`` of shape (n,) (one ranking) or (q, n) (q rankings of n
candidates each) and return the mean over the rows. A row's ranking sorts ``scores`` in
descending order with a stable sort, so tied scores keep their column order (deterministic).

NDCG@k, graded relevance with *linear* gain (Järvelin & Kekäläinen 2002)::

    DCG@k  = sum over ranks r = 1..min(k, n) of rel(r) / log2(r + 1)
    NDCG@k = DCG@k / IDCG@k,   IDCG@k = DCG@k of the ranking by ``relevance`` itself

Binary relevance (0/1) is the special case. A row with no relevant item (IDCG = 0) scores 0.

Precision@k: the share of the top-k places that hold a relevant item (``relevance > 0``),
``hits / k``. When a row has fewer than k candidates the missing places count as not relevant
(trec_eval's P@k), so a perfect ranking of n < k items scores n_relevant / k.

References:
    K. Järvelin and J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques",
    ACM TOIS 20(4), 2002.

Example:
    >>> import numpy as np
    >>> ndcg_at_k(np.array([3.0, 2.0, 1.0]), np.array([0.0, 1.0, 0.0]), k=2)
    0.6309297535714575
    >>> precision_at_k(np.array([3.0, 2.0, 1.0]), np.array([0.0, 1.0, 0.0]), k=2)
    0.5
"""

from __future__ import annotations

import numpy as np

from ._errors import AgentError

__all__ = ["ndcg_at_k", "precision_at_k"]


def _rows(scores: np.ndarray, relevance: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, n) float views of both arrays, after checking ``k`` and the shapes."""
    if k < 1:
        raise AgentError(f"k must be >= 1, got {k}")
    s, r = np.asarray(scores, dtype=float), np.asarray(relevance, dtype=float)
    if s.shape != r.shape or s.ndim not in (1, 2):
        raise AgentError(
            f"scores and relevance must share a shape (n,) or (q, n), got {s.shape} and {r.shape}"
        )
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise AgentError("relevance must be finite and >= 0")
    return np.atleast_2d(s), np.atleast_2d(r)


def _top_k(s: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """(q, min(k, n)) relevance of each row's top-k by descending score (stable: ties by column)."""
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(r, order, axis=1)


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k (linear gain ``rel / log2(rank + 1)``) of ranking by ``scores``.

    Args:
        scores: (n,) or (q, n) predicted scores; higher ranks first, ties by column order.
        relevance: same shape, graded relevance >= 0 (binary 0/1 is the special case).
        k: cut-off, >= 1; ``k > n`` ranks all n candidates.

    Returns:
        The mean over rows, in [0, 1]; a row with no relevant item counts 0.

    Raises:
        AgentError: ``k < 1``, mismatched or non-(n,)/(q, n) shapes, negative relevance.
    """
    s, r = _rows(scores, relevance, k)
    if s.size == 0:
        return 0.0
    gains = _top_k(s, r, k)
    discount = 1.0 / np.log2(np.arange(2, gains.shape[1] + 2))
    dcg = gains @ discount
    idcg = -np.sort(-r, axis=1)[:, : gains.shape[1]] @ discount
    return float(np.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)))


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Mean Precision@k: the share of the top-k places (by ``scores``) holding a relevant item.

    Args:
        scores: (n,) or (q, n) predicted scores; higher ranks first, ties by column order.
        relevant: same shape; an item is relevant when its entry is > 0 (bool or graded).
        k: cut-off, >= 1; places beyond n (``k > n``) count as not relevant.

    Returns:
        The mean over rows of ``hits / k``, in [0, 1].

    Raises:
        AgentError: ``k < 1``, mismatched or non-(n,)/(q, n) shapes, negative relevance.
    """
    s, r = _rows(scores, relevant, k)
    if s.size == 0:
        return 0.0
    return float(np.mean((_top_k(s, r, k) > 0).sum(axis=1) / k))
