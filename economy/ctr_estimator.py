"""The device's count-based CTR estimate per (user, category), from its private click log.

A Beta-Binomial posterior mean per user and category: the simplest on-device scorer, used by
the fast path until a language-model agent replaces it. Counts never leave the estimator; the
market only asks it for predictions of the user whose device runs the auction.
"""

from __future__ import annotations

import numpy as np


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

    def predict(self, users: np.ndarray) -> np.ndarray:
        """(len(users), categories) predicted CTR."""
        a = self._prior[users] * self._n
        return (self._clicks[users] + a) / (self._views[users] + self._n)

    def set_prior(self, prior_ctr: np.ndarray) -> None:
        """(users, categories) prior mean CTR, e.g. from friends' trends."""
        self._prior = np.clip(np.asarray(prior_ctr, dtype=float), 1e-6, 1.0)

    def interest_summary(self) -> np.ndarray:
        """(users, categories) each user's share of own clicks per category (rows sum <= 1):
        what the device shares, noised, with friends."""
        total = self._clicks.sum(axis=1, keepdims=True)
        return np.divide(self._clicks, total, out=np.zeros_like(self._clicks), where=total > 0)

    def observe(self, users: np.ndarray, categories: np.ndarray, clicks: np.ndarray) -> None:
        """Record impressions ``(users[i], categories[i])`` and whether each was clicked."""
        np.add.at(self._views, (users, categories), 1.0)
        np.add.at(self._clicks, (users, categories), clicks.astype(float))
