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
        self._a = prior_ctr * prior_strength
        self._n = prior_strength

    def predict(self, users: np.ndarray) -> np.ndarray:
        """(len(users), categories) predicted CTR."""
        return (self._clicks[users] + self._a) / (self._views[users] + self._n)

    def observe(self, users: np.ndarray, categories: np.ndarray, clicks: np.ndarray) -> None:
        """Record impressions ``(users[i], categories[i])`` and whether each was clicked."""
        np.add.at(self._views, (users, categories), 1.0)
        np.add.at(self._clicks, (users, categories), clicks.astype(float))
