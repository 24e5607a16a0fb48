"""Run-config settings of the federated training app (flat Flower keys, validated).

Set them in ``[tool.flwr.app.config]`` or with ``flwr run . -c "key=value"``; unknown keys
(of this app) and bad values are errors naming the key.
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import FederationError
from .poisoning import ATTACKS
from .strategies import DP_MODES, STRATEGIES

DEFAULTS: dict[str, Any] = {
    "task": "click",
    "model": "minilm",
    "max-length": 32,
    "device-store": "",
    "economy-run-dir": "",
    "lora-rank": 8,
    "agent-lr": 2e-3,
    "batch-size": 16,
    "users-per-client": 0,
    "positives-per-user": 4,
    "dp-sgd-clipping-norm": 0.0,
    "dp-sgd-noise-multiplier": 0.0,
    "secagg": False,
    "secagg-num-shares": 3,
    "secagg-threshold": 2,
    "mode": "sync",
    "num-server-rounds": 3,
    "strategy": "fedavg",
    "fraction-train": 1.0,
    "fraction-evaluate": 1.0,
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
    "num-nodes": 0,
    "node-timeout": 120.0,
    "server-eval": False,
    "method": "strategy",
    "clients-per-round": 0,
    "fairness-floor": 0.2,
    "buffer-size": 2,
    "concurrency": 0,
    "server-lr": 1.0,
    "lr-schedule": "constant",
    "lr-min": 0.0,
    "lora-targets": "q_proj,v_proj",
    "seed": 0,
    "checkpoint-dir": "",
    "resume": False,
    "output": "",
}
_CHOICES = {
    "task": ("click", "agent", "device", "instruct"),
    "mode": ("sync", "async"),
    "strategy": tuple(STRATEGIES),
    "dp": DP_MODES,
    "attack": ATTACKS,
    "method": ("strategy", "lolafl"),
    "lr-schedule": ("constant", "cosine"),
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
    # keys of the other apps (LoLaFL's) pass through for them to check
    cfg = {**DEFAULTS, **run_config}
    for key, allowed in _CHOICES.items():
        if cfg[key] not in allowed:
            raise FederationError(f"{key} = {cfg[key]!r}; allowed: {', '.join(allowed)}")
    for key in ("num-server-rounds", "local-epochs"):
        if int(cfg[key]) < 1:
            raise FederationError(f"{key} must be >= 1, got {cfg[key]}")
    if int(cfg["num-nodes"]) < 0:
        raise FederationError(
            f"num-nodes must be >= 0 (0: every node of the federation), got {cfg['num-nodes']}"
        )
    if not float(cfg["node-timeout"]) > 0:
        raise FederationError(f"node-timeout must be > 0 seconds, got {cfg['node-timeout']}")
    if not 0 <= float(cfg["fraction-evaluate"]) <= 1:
        raise FederationError(
            f"fraction-evaluate must be in [0, 1], got {cfg['fraction-evaluate']}"
        )
    if not 0 <= float(cfg["attack-fraction"]) <= 1:
        raise FederationError(f"attack-fraction must be in [0, 1], got {cfg['attack-fraction']}")
    _check_agent(cfg)
    _check_secagg(cfg)
    if not 0 <= float(cfg["lr-min"]) <= float(cfg[lr_key(cfg)]):
        raise FederationError(
            f"lr-min must be in [0, {lr_key(cfg)} = {cfg[lr_key(cfg)]}], got {cfg['lr-min']}"
        )
    return cfg


def lr_key(cfg: dict[str, Any]) -> str:
    """The run-config key of the task's learning rate: ``lr`` (click task), else ``agent-lr``."""
    return "lr" if cfg["task"] == "click" else "agent-lr"


def cosine_lr(lr: float, lr_min: float, server_round: int, total: int) -> float:
    """Cosine annealing across rounds: ``lr`` in round 1, ``lr_min`` in round ``total``,
    ``lr_min + (lr - lr_min) (1 + cos(pi (r - 1) / (total - 1))) / 2`` between (``lr`` when
    ``total = 1``).

    Example:
        >>> [round(cosine_lr(1.0, 0.0, r, 3), 3) for r in (1, 2, 3)]
        [1.0, 0.5, 0.0]
    """
    if not 1 <= server_round <= total:
        raise FederationError(f"server round must be in 1..{total}, got {server_round}")
    frac = (server_round - 1) / (total - 1) if total > 1 else 0.0
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))


def round_config(cfg: dict[str, Any], server_round: int) -> dict[str, Any]:
    """The config one round's train messages carry: ``cfg`` with the task's learning rate
    (:func:`lr_key`) of that round under ``lr-schedule = "cosine"`` (from its value to
    ``lr-min`` over ``num-server-rounds``); ``cfg`` itself under ``"constant"``."""
    if cfg["lr-schedule"] == "constant":
        return cfg
    key, total = lr_key(cfg), int(cfg["num-server-rounds"])
    lr = cosine_lr(float(cfg[key]), float(cfg["lr-min"]), min(server_round, total), total)
    return {**cfg, key: lr}


def _check_agent(cfg: dict[str, Any]) -> None:
    """The agent task's keys (``task = "agent"``): sizes, DP-SGD, no proximal term."""
    if not isinstance(cfg["model"], str) or not cfg["model"]:
        raise FederationError(
            f"model must be a backbone name (minilm, smollm2, tiny-encoder, tiny-causal) or a "
            f"local model folder, got {cfg['model']!r}"
        )
    for key in ("lora-rank", "batch-size", "positives-per-user"):
        if int(cfg[key]) < 1:
            raise FederationError(f"{key} must be >= 1, got {cfg[key]}")
    if int(cfg["users-per-client"]) < 0:
        raise FederationError(
            f"users-per-client must be >= 0 (0: all), got {cfg['users-per-client']}"
        )
    if not float(cfg["agent-lr"]) > 0:
        raise FederationError(f"agent-lr must be > 0, got {cfg['agent-lr']}")
    clip, noise = float(cfg["dp-sgd-clipping-norm"]), float(cfg["dp-sgd-noise-multiplier"])
    if clip < 0 or noise < 0 or (noise > 0 and clip == 0):
        raise FederationError(
            "dp-sgd-clipping-norm and dp-sgd-noise-multiplier must be >= 0, and noise needs a "
            f"clipping norm > 0; got {clip}, {noise}"
        )
    if cfg["task"] == "agent" and (cfg["strategy"] == "fedprox" or float(cfg["proximal-mu"])):
        raise FederationError(
            "task = 'agent' has no proximal term (agents.train has none): strategy fedprox and "
            "proximal-mu > 0 need task = 'click'"
        )


def _check_secagg(cfg: dict[str, Any]) -> None:
    """SecAgg+ (``secagg = true``) runs FedAvg on Flower's legacy workflow: what it allows."""
    if not isinstance(cfg["secagg"], bool):
        raise FederationError(f"secagg must be true or false, got {cfg['secagg']!r}")
    shares, threshold = int(cfg["secagg-num-shares"]), int(cfg["secagg-threshold"])
    if shares < 3 or shares % 2 == 0:
        raise FederationError(
            f"secagg-num-shares must be odd and >= 3 (even values halt SecAgg+), got {shares}"
        )
    if not 1 <= threshold < shares:
        raise FederationError(
            f"secagg-threshold must be in [1, secagg-num-shares), got {threshold}"
        )
    if not cfg["secagg"]:
        return
    if 0 < int(cfg["num-nodes"]) < shares:
        raise FederationError(
            f"secagg-num-shares ({shares}) must be <= num-nodes ({cfg['num-nodes']})"
        )
    clashes = {
        "mode": (cfg["mode"], "sync"),
        "strategy": (cfg["strategy"], "fedavg"),
        "dp": (cfg["dp"], "none"),
        "clients-per-round": (int(cfg["clients-per-round"]), 0),
    }
    for key, (value, needed) in clashes.items():
        if value != needed:
            raise FederationError(
                f"secagg = true runs FedAvg on Flower's legacy SecAgg+ workflow: {key} must be "
                f"{needed!r}, got {value!r}"
            )
