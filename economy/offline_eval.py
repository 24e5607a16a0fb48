"""Offline evaluation of the agents' ad selection on real logged clicks (Open Bandit Dataset).

The Open Bandit Dataset (ZOZOTOWN fashion e-commerce, Saito et al. 2021) logs which of
``n_actions`` items a behaviour policy (uniform ``random`` or Bernoulli Thompson sampling
``bts``) showed in which of three positions, with its propensity and the click. ``obp`` 0.4.1
ships a 10,000-round sample of each log; it is installed without its dependencies, and
``import obp`` needs scikit-learn, which is not installed, so the CSV files are read from its
package folder directly (with the preprocessing of ``obp.dataset.OpenBanditDataset``: rounds
in time order, positions from 0, user features one-hot with the first level dropped) and
obp's estimators are reimplemented from their definitions, with obp's array conventions
(``action_dist`` (n, n_actions, len_list)):

    IPW = mean_t  r_t w_t,                  w_t = pi_e(a_t | x_t, k_t) / pi_b(a_t | x_t, k_t)
    DM  = mean_t  sum_a pi_e(a | x_t, k_t) q(x_t, a, k_t)
    DR  = mean_t [sum_a pi_e(a | x_t, k_t) q(x_t, a, k_t) + w_t (r_t - q(x_t, a_t, k_t))]

(obp.ope.InverseProbabilityWeighting, DirectMethod, DoublyRobust; Dudík et al. 2011). Each
comes with the standard error of its per-round terms.

The evaluated policy is the agents' ad selection: a click model fitted on the older rounds
(``(1 - test_size)`` of the log) predicts each item's CTR from the logged features (user
features, item features, the user-item affinity, the position); the device's auction with
equal bids then ranks items by it (``policy = "rank"``: the k-th best item goes to position
k, deterministic) or picks one by a softmax of its logits (``"softmax"``, ``temperature``).
Its value (expected clicks per impression) is estimated on the newer rounds and compared with
the logging policy's on-policy CTR there. As a check of the estimators on real data, the
uniform random policy is also evaluated: on ``random`` logs its IPW equals the on-policy CTR
exactly; on ``bts`` logs it is compared with the on-policy CTR of the ``random`` log of the
same campaign (an independent sample of the same policy, as in obp's benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from agents.weights import package_folder
from auction import run_auctions

from .config import ExperimentConfig, OfflineSection
from .rundir import create_run_dir, write_json
from .seeding import RunSeeds


class OfflineError(ValueError):
    """Logged bandit data or a policy is malformed; the message says which array and why."""


@dataclass(frozen=True)
class LoggedBandit:
    """Logged bandit feedback (obp's ``bandit_feedback``), rounds in time order.

    Attributes:
        action: (n,) int, the item shown.
        position: (n,) int, where it was shown (0 = top).
        reward: (n,) int, click (1) or not (0).
        pscore: (n,) float, the behaviour policy's probability of that item there (> 0).
        context: (n, dx) float, user features (one-hot).
        affinity: (n, n_actions) float, user-item affinity of each item.
        action_context: (n_actions, da) float, item features.
    """

    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    context: np.ndarray
    affinity: np.ndarray
    action_context: np.ndarray

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.action_context.shape[0])

    @property
    def len_list(self) -> int:
        return int(self.position.max()) + 1

    def split(self, test_size: float) -> tuple[LoggedBandit, LoggedBandit]:
        """(older, newer) rounds; ``test_size`` of them are the newer part."""
        cut = self.n_rounds - max(1, round(self.n_rounds * test_size))
        if cut < 1:
            raise OfflineError(f"test_size {test_size} leaves no training rounds")
        parts = []
        for rows in (slice(0, cut), slice(cut, None)):
            parts.append(
                LoggedBandit(
                    self.action[rows],
                    self.position[rows],
                    self.reward[rows],
                    self.pscore[rows],
                    self.context[rows],
                    self.affinity[rows],
                    self.action_context,
                )
            )
        return parts[0], parts[1]


def obd_folder() -> Path:
    """``dataset/obd`` inside the installed ``obp`` package (found, not imported)."""
    return package_folder(
        "obp", "dataset", "obd", ships="the Open Bandit Dataset sample", error=OfflineError
    )


def load_open_bandit(behavior_policy: str = "random", campaign: str = "all") -> LoggedBandit:
    """The shipped Open Bandit Dataset sample of one behaviour policy and campaign."""
    import pandas as pd

    if behavior_policy not in ("random", "bts") or campaign not in ("all", "men", "women"):
        raise OfflineError(
            f"behavior_policy must be 'random' or 'bts' and campaign 'all', 'men' or "
            f"'women', got {behavior_policy!r}, {campaign!r}"
        )
    folder = obd_folder() / behavior_policy / campaign
    data = pd.read_csv(folder / f"{campaign}.csv", index_col=0)
    items = pd.read_csv(folder / "item_context.csv", index_col=0).sort_values("item_id")
    data = data.sort_values("timestamp", kind="stable")
    users = data.loc[:, data.columns.str.startswith("user_feature")]
    affinity = data.loc[:, data.columns.str.startswith("user-item_affinity")]
    categorical = items.drop(columns=["item_id", "item_feature_0"]).astype(str)
    item_x = np.column_stack(
        [pd.get_dummies(categorical).to_numpy(float), items["item_feature_0"].to_numpy(float)]
    )
    position = data["position"].to_numpy()
    return LoggedBandit(
        action=data["item_id"].to_numpy(np.int64),
        position=np.unique(position, return_inverse=True)[1].astype(np.int64),
        reward=data["click"].to_numpy(np.int64),
        pscore=data["propensity_score"].to_numpy(float),
        context=pd.get_dummies(users.astype(str), drop_first=True).to_numpy(float),
        affinity=affinity.to_numpy(float),
        action_context=item_x,
    )


# --- estimators ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate (expected reward per round) and its standard error."""

    value: float
    stderr: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "stderr": self.stderr}


def _check(
    reward: np.ndarray,
    action: np.ndarray,
    position: np.ndarray,
    pscore: np.ndarray,
    action_dist: np.ndarray,
) -> None:
    n = reward.shape[0]
    if action_dist.ndim != 3 or action_dist.shape[0] != n:
        raise OfflineError(
            f"action_dist must be (n_rounds={n}, n_actions, len_list), got {action_dist.shape}"
        )
    for name, arr in (("action", action), ("position", position), ("pscore", pscore)):
        if arr.shape != (n,):
            raise OfflineError(f"{name} must be ({n},) like reward, got {arr.shape}")
    if not np.all(pscore > 0):
        raise OfflineError("pscore must be > 0 for every round (IPW divides by it)")
    if action.min() < 0 or action.max() >= action_dist.shape[1]:
        raise OfflineError(
            f"action must be in [0, {action_dist.shape[1]}), got {action.min()}..{action.max()}"
        )
    if position.min() < 0 or position.max() >= action_dist.shape[2]:
        raise OfflineError(f"position must be in [0, {action_dist.shape[2]})")
    if np.any(action_dist < 0) or not np.allclose(action_dist.sum(axis=1), 1.0):
        raise OfflineError(
            "action_dist must be a distribution over actions for every round and position"
        )


def _terms(terms: np.ndarray) -> Estimate:
    n = terms.size
    return Estimate(float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0)


def importance_weights(action, position, pscore, action_dist) -> np.ndarray:
    """(n,) ``pi_e(a_t | x_t, k_t) / pscore_t``."""
    n = action.shape[0]
    return action_dist[np.arange(n), action, position] / pscore


def ipw(reward, action, position, pscore, action_dist) -> Estimate:
    """Inverse probability weighting (see module docstring); arrays as in obp."""
    reward, action, position, pscore, action_dist = map(
        np.asarray, (reward, action, position, pscore, action_dist)
    )
    _check(reward, action, position, pscore, action_dist)
    return _terms(reward * importance_weights(action, position, pscore, action_dist))


def direct_method(reward, action, position, pscore, action_dist, q_hat) -> Estimate:
    """Direct method: the click model's value under ``action_dist``; ``q_hat`` like
    ``action_dist``."""
    reward, action, position, pscore, action_dist, q_hat = map(
        np.asarray, (reward, action, position, pscore, action_dist, q_hat)
    )
    _check(reward, action, position, pscore, action_dist)
    return _terms(_dm_terms(position, action_dist, q_hat))


def _dm_terms(position: np.ndarray, action_dist: np.ndarray, q_hat: np.ndarray) -> np.ndarray:
    if q_hat.shape != action_dist.shape:
        raise OfflineError(
            f"q_hat must have action_dist's shape {action_dist.shape}, got {q_hat.shape}"
        )
    rows = np.arange(position.shape[0])
    return (action_dist[rows, :, position] * q_hat[rows, :, position]).sum(axis=1)


def doubly_robust(reward, action, position, pscore, action_dist, q_hat) -> Estimate:
    """Doubly robust: the direct method plus the IPW-weighted residual of the click model."""
    reward, action, position, pscore, action_dist, q_hat = map(
        np.asarray, (reward, action, position, pscore, action_dist, q_hat)
    )
    _check(reward, action, position, pscore, action_dist)
    rows = np.arange(reward.shape[0])
    w = importance_weights(action, position, pscore, action_dist)
    residual = reward - q_hat[rows, action, position]
    return _terms(_dm_terms(position, action_dist, q_hat) + w * residual)


# --- the agents' click model and policy ---------------------------------------------------


@dataclass(frozen=True)
class ClickModel:
    """Logistic click model, additive in its parts so every (round, item, position) is
    scored without building a feature row for each:

        logit = bias + x_t . w_user + item_a . w_item + w_aff affinity[t, a] + w_pos[k]
    """

    bias: float
    w_user: np.ndarray
    w_item: np.ndarray
    w_aff: float
    w_pos: np.ndarray

    def logits(self, data: LoggedBandit) -> np.ndarray:
        """(n, n_actions, len_list) logits for every item in every position of every round."""
        user = data.context @ self.w_user
        item = data.action_context @ self.w_item
        z = self.bias + user[:, None] + item[None, :] + self.w_aff * data.affinity
        return z[:, :, None] + self.w_pos[None, None, :]

    def predict(self, data: LoggedBandit) -> np.ndarray:
        """(n, n_actions, len_list) predicted CTR."""
        return expit(self.logits(data))


def fit_click_model(data: LoggedBandit, l2: float, len_list: int) -> ClickModel:
    """Ridge-penalised logistic regression on the logged (round, shown item, position, click)
    rows, by L-BFGS (deterministic); the penalty ``l2 / 2 ||w||^2`` spares the bias."""
    n, dx = data.context.shape
    da = data.action_context.shape[1]
    x = np.column_stack(
        [
            np.ones(n),
            data.context,
            data.action_context[data.action],
            data.affinity[np.arange(n), data.action],
            np.eye(len_list)[data.position],
        ]
    )
    y = data.reward.astype(float)
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = expit(z)
        nll = np.logaddexp(0.0, z) - y * z
        return float(nll.sum() + 0.5 * penalty @ (w * w)), x.T @ (p - y) + penalty * w

    w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return ClickModel(
        bias=float(w[0]),
        w_user=w[1 : 1 + dx],
        w_item=w[1 + dx : 1 + dx + da],
        w_aff=float(w[1 + dx + da]),
        w_pos=w[2 + dx + da :],
    )


def agent_policy(logits: np.ndarray, cfg: OfflineSection, rng: np.random.Generator) -> np.ndarray:
    """(n, n_actions, len_list) action distribution of the agents' selection.

    ``rank``: the device's auction with equal bids and quality = predicted CTR fills the
    positions top down (``auction.run_auctions``, GSP, ties broken with ``rng``); ``softmax``:
    each position draws an item with probability ``softmax(logit / temperature)``.
    """
    n, n_actions, len_list = logits.shape
    if cfg.policy == "softmax":
        z = logits[:, :, 0] / cfg.temperature  # the position term shifts all items alike
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return np.repeat(p[:, :, None], len_list, axis=2)
    out = run_auctions(
        np.ones((n, n_actions)),
        mechanism="gsp",
        slot_ctrs=np.ones(len_list),
        quality=expit(logits[:, :, 0]),
        rng=rng,
    )
    dist = np.zeros((n, n_actions, len_list))
    rows = np.repeat(np.arange(n), len_list)
    dist[rows, out.winners.ravel(), np.tile(np.arange(len_list), n)] = 1.0
    return dist


def _weight_diagnostics(w: np.ndarray) -> dict[str, float]:
    """Importance-weight health: the mean is 1 in expectation; rounds with a weight > 0 are
    the ones whose logged item the policy could have chosen."""
    return {
        "weight_mean": float(w.mean()),
        "weight_max": float(w.max()),
        "matched_rounds": int((w > 0).sum()),
    }


def evaluate(cfg: ExperimentConfig) -> dict:
    """Fit the click model, estimate the agents' policy value on the newer rounds, and check
    the estimators on the uniform random policy (see module docstring)."""
    off = cfg.offline
    data = load_open_bandit(off.behavior_policy, off.campaign)
    train, test = data.split(off.test_size)
    model = fit_click_model(train, off.l2, data.len_list)
    q_hat = model.predict(test)
    rng = RunSeeds(cfg.seed).generator("offline")
    pi_e = agent_policy(model.logits(test), off, rng)
    logged = (test.reward, test.action, test.position, test.pscore)
    uniform = np.full(pi_e.shape, 1.0 / data.n_actions)
    random_log = (
        data if off.behavior_policy == "random" else load_open_bandit("random", off.campaign)
    )
    random_ctr = float(random_log.split(off.test_size)[1].reward.mean())
    return {
        "dataset": "obp",
        "behavior_policy": off.behavior_policy,
        "campaign": off.campaign,
        "rounds": {"train": train.n_rounds, "test": test.n_rounds},
        "n_actions": data.n_actions,
        "len_list": data.len_list,
        "clicks": {"train": int(train.reward.sum()), "test": int(test.reward.sum())},
        "on_policy_ctr": float(test.reward.mean()),
        "agent_policy": {
            "policy": off.policy,
            "ipw": ipw(*logged, pi_e).as_dict(),
            "dm": direct_method(*logged, pi_e, q_hat).as_dict(),
            "dr": doubly_robust(*logged, pi_e, q_hat).as_dict(),
            **_weight_diagnostics(
                importance_weights(test.action, test.position, test.pscore, pi_e)
            ),
        },
        "uniform_random_check": {
            "ipw": ipw(*logged, uniform).as_dict(),
            "dr": doubly_robust(*logged, uniform, q_hat).as_dict(),
            "on_policy_ctr_of_random_log": random_ctr,
        },
    }


def run_offline(cfg: ExperimentConfig) -> Path:
    """Evaluate and write ``summary.json`` into a new run folder (with ``config.toml``)."""
    if cfg.offline.dataset != "obp":
        raise OfflineError(
            f"offline.dataset must be 'obp' to evaluate offline, got {cfg.offline.dataset!r}"
        )
    summary = {"name": cfg.name, "seed": cfg.seed, **evaluate(cfg)}
    run_dir = create_run_dir(cfg)
    write_json(run_dir / "summary.json", summary)
    return run_dir
