"""One privacy accountant per user for a whole run, composing every mechanism that touched them.

The unit of privacy is the user: two runs are neighbours when one user's data (all of it, every
round) is added or removed. Each mechanism a user takes part in is charged to that user alone:

- ``gaussian(z)``: a Gaussian mechanism with noise multiplier ``z`` (std / L2 sensitivity),
  e.g. one DP-FedAvg round the user's clipped update went into (no sampling amplification:
  the exchange picks devices by budget and data, not by a Poisson coin);
- ``laplace(eps)``: an ``eps``-local-DP Laplace release (noise scale = L1 sensitivity / eps),
  e.g. a noised interest summary sent to friends;
- ``pure(eps)``: any other ``eps``-DP mechanism (randomized response of a click,
  report-noisy-max of an ad choice), composed through its worst case, binary randomized
  response (Kairouz, Oh and Viswanath 2015);
- ``unbounded(name)``: a release with no noise: the user's epsilon is ``inf`` from then on.

Composition is numerical, with privacy loss distributions (PLD; Koskela et al. 2020, Google's
``dp-accounting`` with pessimistic discretisation, so the reported epsilon is an upper bound);
:meth:`UserAccountant.epsilons` with ``method="rdp"`` gives the Renyi-DP bound (Mironov 2017)
as a cross-check, which is never below the PLD one by more than the discretisation.

Users with the same history have the same epsilon, so it is computed once per distinct history.

Example:
    >>> acc = UserAccountant(3, budget=8.0)
    >>> acc.charge([0, 1], gaussian(2.0)).tolist()
    [True, True]
    >>> acc.epsilons().round(2).tolist()
    [1.99, 1.99, 0.0]
    >>> acc.charge([0], unbounded("raw trend")).tolist()  # inf never fits a finite budget
    [False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from .privacy import PrivacyError

Kind = Literal["gaussian", "laplace", "pure", "unbounded"]
_DISCRETISATION = 1e-3
# The orders dp-accounting's RDP accountant uses by default.
_ORDERS = np.concatenate([np.linspace(1.01, 8, num=50), np.arange(8, 64), np.linspace(65, 512, 15)])


@dataclass(frozen=True)
class Mechanism:
    """One private release a user can take part in (see the module doc for the kinds).

    ``param`` is the noise multiplier (gaussian), the Laplace scale over the sensitivity
    (laplace) or epsilon (pure); ``name`` says what it was, for the run's record.
    """

    name: str
    kind: Kind
    param: float

    def epsilon_once(self, delta: float) -> float:
        """Epsilon of one use at ``delta``."""
        return _pld_epsilon(((self.kind, self.param, 1),), delta)


def gaussian(noise_multiplier: float, name: str = "gaussian") -> Mechanism:
    """A Gaussian mechanism, ``noise_multiplier`` = std / L2 sensitivity (0: no noise, inf)."""
    if not noise_multiplier >= 0 or math.isinf(noise_multiplier):
        raise PrivacyError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    if noise_multiplier == 0:
        return unbounded(name)
    return Mechanism(name, "gaussian", float(noise_multiplier))


def laplace(epsilon: float, name: str = "laplace") -> Mechanism:
    """An ``epsilon``-DP Laplace release (scale = sensitivity / epsilon); ``inf``: no noise."""
    if not epsilon > 0:
        raise PrivacyError(f"epsilon must be > 0, got {epsilon}")
    if math.isinf(epsilon):
        return unbounded(name)
    return Mechanism(name, "laplace", 1.0 / float(epsilon))


def pure(epsilon: float, name: str = "pure") -> Mechanism:
    """Any ``epsilon``-DP mechanism (accounted as its worst case); ``inf``: no noise."""
    if not epsilon > 0:
        raise PrivacyError(f"epsilon must be > 0, got {epsilon}")
    if math.isinf(epsilon):
        return unbounded(name)
    return Mechanism(name, "pure", float(epsilon))


def unbounded(name: str) -> Mechanism:
    """A release without noise: no finite epsilon bounds it."""
    return Mechanism(name, "unbounded", math.inf)


History = tuple[tuple[str, float, int], ...]


@cache
def _pld_epsilon(history: History, delta: float) -> float:
    from dp_accounting.pld import privacy_loss_distribution as pld

    total = None
    for kind, param, count in history:
        if count == 0:
            continue
        if kind == "unbounded":
            return math.inf
        if kind == "gaussian":
            one = pld.from_gaussian_mechanism(param, value_discretization_interval=_DISCRETISATION)
        elif kind == "laplace":
            one = pld.from_laplace_mechanism(param, value_discretization_interval=_DISCRETISATION)
        else:
            from dp_accounting.pld import common

            one = pld.from_privacy_parameters(
                common.DifferentialPrivacyParameters(param, 0.0),
                value_discretization_interval=_DISCRETISATION,
            )
        many = one.self_compose(count) if count > 1 else one
        total = many if total is None else total.compose(many)
    return 0.0 if total is None else max(0.0, float(total.get_epsilon_for_delta(delta)))


def _rdp_curve(kind: str, param: float) -> np.ndarray:
    a = _ORDERS
    if kind == "gaussian":
        return a / (2 * param**2)
    if kind == "laplace":  # Mironov 2017, table II, sensitivity 1 and scale ``param``
        b = param
        log_terms = np.logaddexp(
            np.log(a / (2 * a - 1)) + (a - 1) / b, np.log((a - 1) / (2 * a - 1)) - a / b
        )
        return log_terms / (a - 1)
    # eps-DP implies (eps^2 / 2)-zCDP (Bun and Steinke 2016) and D_inf <= eps
    return np.minimum(param, a * param**2 / 2)


@cache
def _rdp_epsilon(history: History, delta: float) -> float:
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    rdp = np.zeros_like(_ORDERS)
    for kind, param, count in history:
        if count == 0:
            continue
        if kind == "unbounded":
            return math.inf
        rdp = rdp + count * _rdp_curve(kind, param)
    if not rdp.any():
        return 0.0
    return float(compute_epsilon(_ORDERS, rdp, delta)[0])


class UserAccountant:
    """Per-user privacy ledger of a run (see the module doc).

    Args:
        n_users: number of users (ids 0..n_users-1).
        delta: the delta every epsilon is reported at, in (0, 1).
        budget: epsilon each user may spend over the run (``inf``: no limit); a charge that
            would take a user past it is refused and counted, and the user is left out of
            that release.
    """

    def __init__(self, n_users: int, *, delta: float = 1e-5, budget: float = math.inf) -> None:
        if int(n_users) != n_users or n_users < 1:
            raise PrivacyError(f"n_users must be an integer >= 1, got {n_users}")
        if not 0 < delta < 1:
            raise PrivacyError(f"delta must be in (0, 1), got {delta}")
        if not budget > 0:
            raise PrivacyError(f"budget must be > 0 (inf for none), got {budget}")
        self.n_users, self.delta, self.budget = int(n_users), float(delta), float(budget)
        self.counts: dict[Mechanism, np.ndarray] = {}
        self.refused: dict[str, int] = {}

    def _histories(self, extra: dict[Mechanism, np.ndarray] | None = None) -> list[History]:
        mechs = sorted(set(self.counts) | set(extra or {}), key=lambda m: (m.kind, m.param))
        zero = np.zeros(self.n_users, np.int64)
        cols = []
        for m in mechs:
            c = self.counts.get(m, zero)
            if extra and m in extra:
                c = c + extra[m]
            cols.append(c)
        if not cols:
            return [()] * self.n_users
        keys = [(m.kind, m.param) for m in mechs]
        # merge mechanisms of the same kind and parameter (same privacy, different names)
        out = []
        for row in np.stack(cols, axis=1):
            merged: dict[tuple[str, float], int] = {}
            for key, c in zip(keys, row.tolist(), strict=True):
                merged[key] = merged.get(key, 0) + int(c)
            out.append(tuple((k, p, c) for (k, p), c in sorted(merged.items()) if c))
        return out

    def epsilons(
        self,
        users: Sequence[int] | np.ndarray | None = None,
        *,
        method: Literal["pld", "rdp"] = "pld",
        extra: dict[Mechanism, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(n,) float: each user's epsilon at ``delta`` over everything charged so far
        (plus ``extra`` charges, (n_users,) int counts per mechanism, if given)."""
        if method not in ("pld", "rdp"):
            raise PrivacyError(f"method must be 'pld' or 'rdp', got {method!r}")
        fn = _pld_epsilon if method == "pld" else _rdp_epsilon
        hist = self._histories(extra)
        idx = range(self.n_users) if users is None else self._ids(users)
        return np.array([fn(hist[i], self.delta) for i in idx], dtype=np.float64)

    def _ids(self, users: Sequence[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(users, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_users):
            raise PrivacyError(f"user ids must be in 0..{self.n_users - 1}")
        return ids

    def allowed(
        self, users: Sequence[int] | np.ndarray, mechanism: Mechanism, times: int = 1
    ) -> np.ndarray:
        """(len(users),) bool: whether each user can take ``times`` more uses within budget."""
        ids = self._ids(users)
        if math.isinf(self.budget) or ids.size == 0:
            return np.ones(ids.size, bool)
        extra = np.zeros(self.n_users, np.int64)
        extra[ids] = times
        return self.epsilons(ids, extra={mechanism: extra}) <= self.budget

    def charge(
        self, users: Sequence[int] | np.ndarray, mechanism: Mechanism, times: int = 1
    ) -> np.ndarray:
        """Charge ``times`` uses of ``mechanism`` to each user that stays within budget.

        Returns (len(users),) bool, who was charged; the others must be left out of the
        release (the refusals are counted per mechanism in :meth:`summary`).
        """
        if int(times) != times or times < 1:
            raise PrivacyError(f"times must be an integer >= 1, got {times}")
        ids = self._ids(users)
        ok = self.allowed(ids, mechanism, times)
        counts = self.counts.setdefault(mechanism, np.zeros(self.n_users, np.int64))
        np.add.at(counts, ids[ok], int(times))
        if (~ok).any():
            self.refused[mechanism.name] = self.refused.get(mechanism.name, 0) + int((~ok).sum())
        return ok

    def summary(self) -> dict[str, Any]:
        """The run's privacy record: ``epsilon_max``, ``epsilon_median`` (PLD),
        ``epsilon_rdp_max`` (the cross-check), ``delta``, ``budget``, ``uses`` (charges per
        mechanism name) and ``refused`` (releases a user sat out for budget)."""
        eps = self.epsilons()
        uses: dict[str, int] = {}
        for m, c in self.counts.items():
            uses[m.name] = uses.get(m.name, 0) + int(c.sum())
        return {
            "epsilon_max": float(eps.max()),
            "epsilon_median": float(np.median(eps)),
            "epsilon_rdp_max": float(self.epsilons(method="rdp").max()),
            "delta": self.delta,
            "budget": self.budget,
            "uses": uses,
            "refused": dict(self.refused),
        }
