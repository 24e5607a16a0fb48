"""Run-config settings of the federated training app (flat Flower keys, validated).

Set them in ``[tool.flwr.app.config]`` or with ``flwr run . -c "key=value"``; unknown keys
(of this app) and bad values are errors naming the key.
"""

from __future__ import annotations

from typing import Any

from ._errors import FederationError
from .poisoning import ATTACKS
from .strategies import DP_MODES, STRATEGIES

DEFAULTS: dict[str, Any] = {
    "mode": "sync",
    "num-server-rounds": 3,
    "strategy": "fedavg",
    "fraction-train": 1.0,
    "local-epochs": 1,
    "lr": 2.0,
    "proximal-mu": 0.0,
    "dp": "none",
    "noise-multiplier": 0.0,
    "clipping-norm": 1.0,
    "dp-delta": 1e-5,
    "attack": "none",
    "attack-fraction": 0.0,
    "attack-scale": 1.0,
    "num-malicious": 0,
    "num-nodes": 2,
    "clients-per-round": 0,
    "fairness-floor": 0.2,
    "buffer-size": 2,
    "concurrency": 0,
    "server-lr": 1.0,
    "seed": 0,
    "checkpoint-dir": "",
    "resume": False,
    "output": "",
}
_CHOICES = {
    "mode": ("sync", "async"),
    "strategy": tuple(STRATEGIES),
    "dp": DP_MODES,
    "attack": ATTACKS,
}
# Keys that belong to other apps sharing the run config (LoLaFL) are left alone.
_FOREIGN_PREFIXES = ("lolafl-",)


def settings(run_config: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``run_config``, checked."""
    unknown = sorted(
        k for k in run_config if k not in DEFAULTS and not k.startswith(_FOREIGN_PREFIXES)
    )
    if unknown:
        raise FederationError(f"unknown run-config keys {unknown}; allowed: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **{k: v for k, v in run_config.items() if k in DEFAULTS}}
    for key, allowed in _CHOICES.items():
        if cfg[key] not in allowed:
            raise FederationError(f"{key} = {cfg[key]!r}; allowed: {', '.join(allowed)}")
    for key in ("num-server-rounds", "local-epochs", "num-nodes"):
        if int(cfg[key]) < 1:
            raise FederationError(f"{key} must be >= 1, got {cfg[key]}")
    if not 0 <= float(cfg["attack-fraction"]) <= 1:
        raise FederationError(f"attack-fraction must be in [0, 1], got {cfg['attack-fraction']}")
    return cfg
