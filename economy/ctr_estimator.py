"""The device's count-based CTR estimate per (user, category), from its private click log.

A Beta-Binomial posterior mean per user and category: the simplest on-device scorer, used by
the fast path until a language-model agent replaces it. Counts never leave the estimator; the
market only asks it for predictions of the user whose device runs the auction.

The market asks for every user's prediction at least twice per step (the step's auctions and
its NDCG), and between two steps nothing changes it: :meth:`CategoryCTR.predict_all` keeps the
(users, categories) table until the next :meth:`~CategoryCTR.observe` or
:meth:`~CategoryCTR.set_prior`. The table is derived state: a checkpoint holds the counts and
the prior only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_STATE = ("_clicks", "_views", "_prior", "_n")  # what a checkpoint holds


class CategoryCTR:
    """Posterior-mean CTR per (user, category) with a Beta prior.

    Args:
        users: number of users (devices).
        categories: number of ad categories.
        prior_ctr: prior mean CTR.
        prior_strength: pseudo-impressions behind the prior.
    """

    def __init__(
        self, users: int, categories: int, prior_ctr: float, prior_strength: float = 20.0
    ) -> None:
        self._clicks = np.zeros((users, categories))
        self._views = np.zeros((users, categories))
        self._prior = np.full((users, categories), float(prior_ctr))
        self._n = prior_strength
        self._table: np.ndarray | None = None  # predict_all's, until the counts or prior change

    def predict(self, users: np.ndarray) -> np.ndarray:
        """(len(users), categories) predicted CTR."""
        a = self._prior[users] * self._n
        return (self._clicks[users] + a) / (self._views[users] + self._n)

    def predict_all(self) -> np.ndarray:
        """(users, categories) every user's predicted CTR, equal to ``predict(all users)``;
        computed once per change of the counts or the prior. Read-only: the estimator keeps
        it."""
        if self._table is None:
            table = (self._clicks + self._prior * self._n) / (self._views + self._n)
            table.flags.writeable = False
            self._table = table
        return self._table

    def set_prior(self, prior_ctr: np.ndarray) -> None:
        """(users, categories) prior mean CTR, e.g. from friends' trends."""
        self._prior = np.clip(np.asarray(prior_ctr, dtype=float), 1e-6, 1.0)
        self._table = None

    def interest_summary(self) -> np.ndarray:
        """(users, categories) each user's share of own clicks per category (rows sum <= 1):
        what the device shares, noised, with friends."""
        total = self._clicks.sum(axis=1, keepdims=True)
        return np.divide(self._clicks, total, out=np.zeros_like(self._clicks), where=total > 0)

    def observe(self, users: np.ndarray, categories: np.ndarray, clicks: np.ndarray) -> None:
        """Record impressions ``(users[i], categories[i])`` and whether each was clicked.

        Counts are whole numbers, so adding a step's counts per cell at once (``bincount``)
        gives exactly what adding them one by one does.
        """
        shape = self._views.shape
        cell = np.ravel_multi_index((users, categories), shape)
        size = shape[0] * shape[1]
        self._views += np.bincount(cell, minlength=size).reshape(shape)
        hits = np.bincount(cell, weights=np.asarray(clicks, dtype=float), minlength=size)
        self._clicks += hits.reshape(shape)
        self._table = None

    def __getstate__(self) -> dict[str, Any]:
        """The counts and the prior (the prediction table is derived: not saved)."""
        return {key: getattr(self, key) for key in _STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`__getstate__` gave (or an older checkpoint's attributes)."""
        for key in _STATE:
            setattr(self, key, state[key])
        self._table = None
