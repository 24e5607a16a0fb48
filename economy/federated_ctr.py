"""The devices' shared click model, learned in federated rounds and paid for in tokens.

Every ``federated.every`` steps, ``clients_per_round`` devices are sampled; each trains the
global bilinear click model (``federation.ClickTask``'s: features = the user's own
click-history shares, the ad's category) for a few epochs on its private impression log and
sends only the new parameters. The server values the updates with GTG-Shapley (``incentives``)
against a validation log of other devices — the utility of a coalition is the validation
log-likelihood of ``w_t + weighted mean of its updates`` — pays tokens from
``revenue_share`` of the step's auction revenue into the ledger, and applies FedAvg. Devices
then blend the global model's CTR with their own count-based estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from federation.task import ClickTask, ClientData
from incentives import Ledger, MaxEvaluations, RewardPolicy, fl_utility, gini, valuate

from .config import FederatedSection


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class FederatedCTR:
    """Global model, impression logs, valuation, rewards (see module doc).

    Args:
        cfg: the ``[federated]`` section.
        users, categories: population size and number of ad categories.
        base_ctr: prior CTR (sets the initial bias).
        ledger: where token rewards are recorded.
        rng: the component's random stream.
    """

    def __init__(
        self,
        cfg: FederatedSection,
        users: int,
        categories: int,
        base_ctr: float,
        ledger: Ledger,
        rng: np.random.Generator,
    ) -> None:
        self.cfg, self.users, self.ledger, self.rng = cfg, users, ledger, rng
        self.task = ClickTask(categories=categories)
        bias = np.log(base_ctr / (1 - base_ctr))
        self.arrays = {
            "W": np.zeros((categories, categories), np.float32),
            "b": np.array([bias], np.float32),
        }
        self.policy = RewardPolicy(revenue_share=cfg.revenue_share)
        self._logs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.tokens = np.zeros(users)

    def predict(self, history: np.ndarray) -> np.ndarray:
        """(k, C) global-model CTR for users with (k, C) click-history shares."""
        W, b = self.arrays["W"].astype(float), float(self.arrays["b"][0])
        return _sigmoid(history @ W + b)

    def log(
        self, users: np.ndarray, history: np.ndarray, cats: np.ndarray, clicks: np.ndarray
    ) -> None:
        """Keep one step of impressions (device-side logs; only parameters ever leave)."""
        self._logs.append((users, history, cats, clicks.astype(np.float32)))
        del self._logs[: -self.cfg.window]

    def _data(self, mask_of: np.ndarray) -> ClientData:
        u, h, c, y = (np.concatenate(parts) for parts in zip(*self._logs, strict=True))
        keep = mask_of[u]
        empty = np.zeros((0, self.task.k))
        return ClientData(
            h[keep], c[keep], y[keep], np.zeros((0, self.task.c)), empty, empty.astype(int)
        )

    def round(self, step: int, revenue: float) -> dict[str, Any]:
        """One federated round; returns its metrics (clients, tokens paid, evaluations)."""
        if not self._logs:
            return {"fed_clients": 0, "fed_tokens": 0.0, "fed_evaluations": 0}
        seen = np.unique(np.concatenate([u for u, *_ in self._logs]))
        k = min(self.cfg.clients_per_round, seen.size - 1)
        if k < 1:
            return {"fed_clients": 0, "fed_tokens": 0.0, "fed_evaluations": 0}
        chosen = self.rng.choice(seen, size=k, replace=False)
        others = np.ones(self.users, bool)
        others[chosen] = False
        valid = self._data(others)
        updates, weights = [], []
        for u in chosen:
            mine = np.zeros(self.users, bool)
            mine[u] = True
            new, m, _ = self.task.train(
                self.arrays,
                self._data(mine),
                epochs=self.cfg.local_epochs,
                lr=self.cfg.lr,
                rng=self.rng,
            )
            updates.append({key: new[key] - self.arrays[key] for key in new})
            weights.append(m)

        def loglik(params: dict[str, np.ndarray]) -> float:
            z = (
                np.einsum(
                    "mi,ij,mj->m", valid.x_hist, params["W"], np.eye(self.task.c)[valid.ad_cat]
                )
                + params["b"][0]
            )
            p = _sigmoid(z)
            y = valid.clicks
            return float(np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))

        utility = fl_utility(self.arrays, updates, weights, loglik)
        result = valuate(
            utility,
            k,
            method=self.cfg.valuation,
            rng=self.rng,
            stopping=MaxEvaluations(self.cfg.valuation_budget),
            # svarm-cv's control variate models the weighted average the utility builds.
            weights=weights if self.cfg.valuation == "svarm-cv" else None,
        )
        rewards = self.policy.pay(result.values, revenue)
        for u, amount in zip(chosen, rewards, strict=True):
            if amount * 1e6 >= 1:
                self.ledger.mint(
                    f"user-{int(u)}", float(amount), round=step, memo=f"{self.cfg.valuation} value"
                )
                self.tokens[u] += round(float(amount) * 1e6) / 1e6
        w = np.asarray(weights, float) / sum(weights)
        for key in self.arrays:
            step_ = sum(wi * d[key] for wi, d in zip(w, updates, strict=True))
            self.arrays[key] = (self.arrays[key] + step_).astype(np.float32)
        return {
            "fed_clients": int(k),
            "fed_tokens": float(rewards.sum()),
            "fed_evaluations": int(result.n_evaluations),
        }

    @property
    def token_gini(self) -> float:
        """Gini coefficient of the tokens held by all users."""
        return gini(self.tokens)
