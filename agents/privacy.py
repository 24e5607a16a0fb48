"""Privacy accounting for DP-SGD on the device, and randomized response for click reports.

``epsilon`` composes ``steps`` Poisson-subsampled Gaussian mechanisms (DP-SGD: sampling rate
``q``, noise multiplier ``sigma``) with Google's ``dp-accounting`` library: ``"rdp"`` is the
Renyi-DP accountant (Mironov 2017), ``"prv"`` the numerical privacy-loss-distribution
accountant (PLD; the same privacy-random-variable approach as Gopi et al.'s PRV accountant:
tight up to its discretisation). ``noise_multiplier_for`` inverts it by bisection.

The classic MNIST setting (noise 1.1, q = 256/60000, 60 epochs, delta 1e-5) gives 2.60 with RDP
and 2.39 with PLD; the published 3.01 (TensorFlow Privacy tutorial) is the same RDP curve read
with Mironov's older RDP-to-(eps, delta) conversion, which the tests reproduce.

Privacy lives here because the device is where the budget is spent; ``federation`` and
``graphs`` use it from here. No torch on this module's import path.

Example:
    >>> round(epsilon(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), 2)  # MNIST DP-SGD setting
    2.6
"""

from __future__ import annotations

import math

import numpy as np

ACCOUNTANTS = ("rdp", "prv")


class PrivacyError(ValueError):
    """Bad privacy parameters: the message names the argument and the allowed range."""


def _check(sample_rate: float, steps: int, delta: float) -> None:
    if not 0 < sample_rate <= 1:
        raise PrivacyError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if int(steps) != steps or steps < 0:
        raise PrivacyError(f"steps must be an integer >= 0, got {steps}")
    if not 0 < delta < 1:
        raise PrivacyError(f"delta must be in (0, 1), got {delta}")


def epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: str = "rdp",
) -> float:
    """Epsilon of ``steps`` DP-SGD steps at ``delta``.

    Args:
        noise_multiplier: Gaussian noise std / clipping norm, > 0 (0 gives inf).
        sample_rate: Poisson sampling probability of each example per step, in (0, 1].
        steps: number of noisy steps.
        delta: target delta, in (0, 1).
        accountant: ``"rdp"`` or ``"prv"`` (PLD).
    """
    import dp_accounting as dpa

    _check(sample_rate, steps, delta)
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if steps == 0:
        return 0.0
    if not noise_multiplier > 0:
        return math.inf
    event = dpa.SelfComposedDpEvent(
        dpa.PoissonSampledDpEvent(sample_rate, dpa.GaussianDpEvent(noise_multiplier)), int(steps)
    )
    if accountant == "rdp":
        acc = dpa.rdp.RdpAccountant()
    else:
        acc = dpa.pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


def noise_multiplier_for(
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: str = "rdp",
    tol: float = 1e-3,
) -> float:
    """The smallest noise multiplier whose ``epsilon`` is at most ``target_epsilon``.

    Example:
        >>> z = noise_multiplier_for(3.0, 0.01, 1000, 1e-5)
        >>> epsilon(z, 0.01, 1000, 1e-5) <= 3.0
        True
    """
    _check(sample_rate, steps, delta)
    if not target_epsilon > 0:
        raise PrivacyError(f"target epsilon must be > 0, got {target_epsilon}")
    lo, hi = 0.0, 1.0
    while epsilon(hi, sample_rate, steps, delta, accountant=accountant) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise PrivacyError("no noise multiplier up to 1e4 reaches that epsilon")
    while hi - lo > tol * hi:
        mid = 0.5 * (lo + hi)
        if epsilon(mid, sample_rate, steps, delta, accountant=accountant) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def randomized_response(
    clicks: np.ndarray, epsilon_rr: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Report each 0/1 click truthfully with probability ``e^eps / (1 + e^eps)``, else flipped.

    Each report is ``epsilon_rr``-locally differentially private (Warner 1965);
    ``epsilon_rr = inf`` reports every click as it is (no privacy).
    """
    if not epsilon_rr > 0:
        raise PrivacyError(f"epsilon must be > 0 (inf: no randomization), got {epsilon_rr}")
    c = np.asarray(clicks)
    if not np.isin(c, (0, 1)).all():
        raise PrivacyError("clicks must be 0 or 1")
    keep = np.random.default_rng(rng).random(c.shape) < _truth_probability(epsilon_rr)
    return np.where(keep, c, 1 - c).astype(c.dtype)


def _truth_probability(epsilon_rr: float) -> float:
    """``e^eps / (1 + e^eps)`` without overflow (1 at eps = inf)."""
    return 1.0 / (1.0 + math.exp(-epsilon_rr))


def report_noisy_max(
    scores: np.ndarray, epsilon: float, sensitivity: float, rng: np.random.Generator | int | None
) -> np.ndarray:
    """Index of the noisy maximum of each row: ``argmax_j (scores_j + Gumbel(2 sensitivity /
    epsilon))``, i.e. the exponential mechanism, ``epsilon``-DP per row when one user's data
    moves each score by at most ``sensitivity`` (McSherry and Talwar 2007).

    Args:
        scores: (n, k) or (k,) float, e.g. bid x predicted CTR of each candidate ad.
        epsilon: > 0; ``inf`` returns the plain argmax.
        sensitivity: (n, 1), (n,) or scalar, > 0, e.g. the row's largest bid (CTR in [0, 1]).

    Example:
        >>> int(report_noisy_max(np.array([0.1, 0.9]), float("inf"), 1.0, rng=0))
        1
    """
    if not epsilon > 0:
        raise PrivacyError(f"epsilon must be > 0 (inf: the plain argmax), got {epsilon}")
    s = np.asarray(scores, dtype=np.float64)
    scale = np.asarray(sensitivity, dtype=np.float64)
    if scale.ndim == 1 and s.ndim == 2:
        scale = scale[:, None]
    if not (np.isfinite(s).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise PrivacyError("scores must be finite and sensitivity finite and > 0")
    if math.isinf(epsilon):
        return s.argmax(axis=-1)
    gumbel = np.random.default_rng(rng).gumbel(size=s.shape)
    return (epsilon * s / (2 * scale) + gumbel).argmax(axis=-1)


def debiased_rate(reports: np.ndarray, epsilon_rr: float) -> float:
    """Unbiased estimate of the true click rate from randomized-response reports."""
    if not epsilon_rr > 0:
        raise PrivacyError(f"epsilon must be > 0 (inf: no randomization), got {epsilon_rr}")
    p = _truth_probability(epsilon_rr)
    return float((np.mean(reports) - (1 - p)) / (2 * p - 1))
