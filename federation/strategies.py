"""Server strategies chosen by name from a run config, built from Flower's own strategies.

Flower already implements the aggregation rules well (``flwr.serverapp.strategy``); this
module only maps config names and options onto them, applies the settings these machines need
(``min_*_nodes`` = the cohort, FLOWER-NOTES), and wraps central or client-side DP around any of
them.

Example:
    >>> s = make_strategy("krum", num_nodes=10, num_malicious=2)
    >>> type(s).__name__
    'Krum'
"""

from __future__ import annotations

from typing import Any

from ._errors import FederationError

# name -> (Flower class name, options it accepts beyond the common ones)
STRATEGIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fedavg": ("FedAvg", ()),
    "fedprox": ("FedProx", ("proximal_mu",)),
    "fedadam": ("FedAdam", ("eta", "eta_l", "beta_1", "beta_2", "tau")),
    "fedyogi": ("FedYogi", ("eta", "eta_l", "beta_1", "beta_2", "tau")),
    "fedavgm": ("FedAvgM", ("server_learning_rate", "server_momentum")),
    "krum": ("Krum", ("num_malicious_nodes",)),
    "multikrum": ("MultiKrum", ("num_malicious_nodes", "num_nodes_to_select")),
    "trimmed_avg": ("FedTrimmedAvg", ("beta",)),
    "median": ("FedMedian", ()),
    "bulyan": ("Bulyan", ("num_malicious_nodes",)),
}
ROBUST = ("krum", "multikrum", "trimmed_avg", "median", "bulyan")
DP_MODES = ("none", "central-fixed", "central-adaptive", "client-fixed", "client-adaptive")


def minimum_replies(name: str, num_malicious: int) -> int:
    """Fewest replies a round must aggregate for rule ``name`` to tolerate ``num_malicious``
    attackers: Bulyan 4f + 3 (El Mhamdi et al. 2018; Flower's Bulyan skips every round with
    fewer), Krum and MultiKrum 2f + 3 when f > 0 (Blanchard et al. 2017: n > 2f + 2); 1 else.

    Example:
        >>> minimum_replies("bulyan", 2)
        11
    """
    if name == "bulyan":
        return 4 * num_malicious + 3
    if name in ("krum", "multikrum") and num_malicious > 0:
        return 2 * num_malicious + 3
    return 1


def make_strategy(
    name: str,
    *,
    num_nodes: int,
    fraction_train: float = 1.0,
    fraction_evaluate: float = 1.0,
    num_malicious: int = 0,
    dp: str = "none",
    noise_multiplier: float = 0.0,
    clipping_norm: float = 1.0,
    clipped_count_stddev: float | None = None,
    **options: Any,
) -> Any:
    """A Flower Message-API strategy by name.

    Args:
        name: one of ``STRATEGIES`` (fedavg, fedprox, fedadam, fedyogi, fedavgm, krum,
            multikrum, trimmed_avg, median, bulyan).
        num_nodes: cohort size; every ``min_*_nodes`` is set to the number sampled, so round 1
            never starts before the nodes connect.
        fraction_train: share of the cohort trained each round.
        fraction_evaluate: share of the cohort that evaluates each round (0: none).
        num_malicious: attackers the robust rules must tolerate (Krum, MultiKrum, Bulyan).
        dp: ``"none"``, ``"central-fixed"``, ``"central-adaptive"`` (the server clips and
            noises), ``"client-fixed"``, ``"client-adaptive"`` (clients clip with Flower's
            mods, the server noises).
        noise_multiplier, clipping_norm: DP settings (clipping_norm is the initial norm of the
            adaptive modes).
        clipped_count_stddev: adaptive modes: noise on the clipped-count query; default
            ``max(sampled / 20, noise_multiplier)``, which keeps the update's effective noise
            achievable (Flower requires ``2 x stddev > noise_multiplier``).
        **options: rule-specific options (see ``STRATEGIES``), e.g. ``proximal_mu=0.1``.
    """
    from flwr.serverapp import strategy as fs

    from .rounds import aggregate_metrics

    if name not in STRATEGIES:
        raise FederationError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    if dp not in DP_MODES:
        raise FederationError(f"unknown dp mode {dp!r}; allowed: {', '.join(DP_MODES)}")
    if num_nodes < 1 or not 0 < fraction_train <= 1 or not 0 <= fraction_evaluate <= 1:
        raise FederationError(
            "num_nodes must be >= 1, fraction_train in (0, 1] and fraction_evaluate in [0, 1]"
        )
    cls_name, allowed = STRATEGIES[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FederationError(
            f"strategy {name!r} does not take {unknown}; allowed: {list(allowed) or 'none'}"
        )
    if "num_malicious_nodes" in allowed:
        options.setdefault("num_malicious_nodes", num_malicious)
    sampled = max(1, round(fraction_train * num_nodes))
    f = int(options.get("num_malicious_nodes", num_malicious))
    need = minimum_replies(name, f)
    if sampled < need:
        raise FederationError(
            f"strategy {name!r} tolerating {f} malicious nodes needs at least "
            f"{need} replies a round, but {sampled} are sampled (num_nodes x fraction_train): "
            "sample more nodes or assume fewer attackers"
        )
    common = {
        "fraction_train": fraction_train,
        "fraction_evaluate": fraction_evaluate,
        "min_train_nodes": sampled,
        "min_evaluate_nodes": max(1, round(fraction_evaluate * num_nodes)),
        "min_available_nodes": num_nodes,
        # replies' metrics by meaning (epsilon: max, counts: sum), not all weighted means
        "train_metrics_aggr_fn": aggregate_metrics,
        "evaluate_metrics_aggr_fn": aggregate_metrics,
    }
    strategy = getattr(fs, cls_name)(**common, **options)
    if dp == "none":
        return strategy
    if noise_multiplier < 0 or clipping_norm <= 0:
        raise FederationError("noise_multiplier must be >= 0 and clipping_norm > 0")
    if dp == "central-fixed":
        return fs.DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier, clipping_norm, sampled
        )
    if dp == "client-fixed":
        return fs.DifferentialPrivacyClientSideFixedClipping(
            strategy, noise_multiplier, clipping_norm, sampled
        )
    wrapper = (
        fs.DifferentialPrivacyServerSideAdaptiveClipping
        if dp == "central-adaptive"
        else fs.DifferentialPrivacyClientSideAdaptiveClipping
    )
    if clipped_count_stddev is None:
        clipped_count_stddev = max(sampled / 20, noise_multiplier)
    return wrapper(
        strategy,
        noise_multiplier,
        sampled,
        initial_clipping_norm=clipping_norm,
        clipped_count_stddev=clipped_count_stddev,
    )
