"""Secure aggregation (SecAgg+) inside the main apps, on Flower's legacy workflow path.

SecAgg+ exists in Flower only as ``flwr.server.workflow.SecAggPlusWorkflow`` driving a legacy
strategy, with clients wearing ``secaggplus_mod`` and replying in the legacy ``fitres`` format
(FLOWER-NOTES). ``secagg = true`` in the run config makes the main ServerApp run that workflow
(``run_secagg``) instead of a Message-API strategy; the main ClientApp wears
``secagg_when_asked``, which hands only SecAgg+ stage messages to ``secaggplus_mod``, and
answers legacy ``fitins``/``evaluateins`` in kind (``read_legacy``, ``legacy_*_reply``). The
server then only ever sees the masked sum of the clients' weighted, quantised arrays.

Limits of the legacy path (checked in ``settings``): FedAvg only, synchronous rounds, no
central DP wrapper and no energy-aware selection. SecAgg+'s quantisation clips every
weighted value to ``[-8, 8]`` (``clipping_range``) with 2^22 levels, and weights are divided
by ``MAX_WEIGHT`` examples first. With an even ``num_shares`` the protocol halts while the run
still reports success, so even values are refused and the tests check that the model changed.

Example:
    >>> server, client = make_secagg_apps(num_shares=3, reconstruction_threshold=2)
    >>> type(server).__name__, type(client).__name__
    ('ServerApp', 'ClientApp')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict

MAX_WEIGHT = 10_000.0  # examples per client that still weigh <= 1 inside the masked sum
_STAGES = "secaggplus_configs"  # flwr's RECORD_KEY_CONFIGS of the SecAgg+ stages


def secagg_when_asked(msg: Message, ctxt: Context, call_next: Callable) -> Message:
    """Client mod: SecAgg+ stage messages go through ``secaggplus_mod``, others pass."""
    from flwr.client.mod import secaggplus_mod

    if _STAGES in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def is_legacy(msg: Message) -> bool:
    """Whether ``msg`` carries legacy ``fitins``/``evaluateins`` (the SecAgg+ workflow's)."""
    records = msg.content.array_records
    return "fitins.parameters" in records or "evaluateins.parameters" in records


def read_legacy(msg: Message) -> tuple[list[np.ndarray], dict[str, Any]]:
    """(arrays in sorted-key order, config) of a legacy fit or evaluate instruction."""
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    if "fitins.parameters" in msg.content.array_records:
        ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    else:
        ins = compat.recorddict_to_evaluateins(msg.content, keep_input=True)
    return parameters_to_ndarrays(ins.parameters), dict(ins.config)


def legacy_fit_reply(arrays: list[np.ndarray], num_examples: int, metrics: dict) -> RecordDict:
    """A legacy ``fitres`` (what ``secaggplus_mod`` masks) for arrays in sorted-key order."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.compat.common import recorddict_compat as compat

    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), int(num_examples), metrics)
    return compat.fitres_to_recorddict(res, keep_input=True)


def legacy_evaluate_reply(loss: float, num_examples: int, metrics: dict) -> RecordDict:
    """A legacy ``evaluateres``."""
    from flwr.common import Code, EvaluateRes, Status
    from flwr.compat.common import recorddict_compat as compat

    res = EvaluateRes(Status(Code.OK, ""), float(loss), int(num_examples), metrics)
    return compat.evaluateres_to_recorddict(res)


def _weighted_mean(results: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
    """Metrics averaged with the clients' example counts as weights (as the Message API)."""
    total = sum(n for n, _ in results) or 1
    keys = set.intersection(*(set(m) for _, m in results)) if results else set()
    return {k: float(sum(n * float(m[k]) for n, m in results) / total) for k in sorted(keys)}


def run_secagg(
    grid: Any,
    context: Context,
    cfg: dict[str, Any],
    arrays: dict[str, np.ndarray],
    rounds: int,
    on_round: Callable[[int, dict[str, np.ndarray]], None],
) -> tuple[dict[str, np.ndarray], dict[int, dict], dict[int, dict]]:
    """``rounds`` FedAvg rounds with SecAgg+; returns (final arrays, train and evaluate metrics
    per round). ``on_round(r, arrays)`` sees the global arrays after round ``r`` (1-based).
    """
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    keys = sorted(arrays)
    final = dict(arrays)
    nodes = int(cfg["num-nodes"])

    def record(server_round: int, parameters: list[np.ndarray], config: dict) -> None:
        final.update(zip(keys, parameters, strict=True))
        if server_round > 0:
            on_round(server_round, dict(final))

    def round_config(server_round: int) -> dict[str, Any]:
        return {**cfg, "server-round": server_round}

    strategy = FedAvg(
        fraction_fit=float(cfg["fraction-train"]),
        fraction_evaluate=1.0,
        min_fit_clients=max(1, round(float(cfg["fraction-train"]) * nodes)),
        min_evaluate_clients=nodes,
        min_available_clients=nodes,
        initial_parameters=ndarrays_to_parameters([arrays[k] for k in keys]),
        evaluate_fn=record,
        on_fit_config_fn=round_config,
        on_evaluate_config_fn=round_config,
        fit_metrics_aggregation_fn=_weighted_mean,
        evaluate_metrics_aggregation_fn=_weighted_mean,
    )
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=int(cfg["secagg-num-shares"]),
            reconstruction_threshold=int(cfg["secagg-threshold"]),
            max_weight=MAX_WEIGHT,
        )
    )
    workflow(grid, legacy)

    def per_round(history: dict[str, list[tuple[int, Any]]]) -> dict[int, dict]:
        out: dict[int, dict] = {}
        for key, values in history.items():
            for r, v in values:
                out.setdefault(int(r), {})[key] = float(v)
        return out

    return (
        final,
        per_round(legacy.history.metrics_distributed_fit),
        per_round(legacy.history.metrics_distributed),
    )


def make_secagg_apps(
    *,
    num_shares: int = 3,
    reconstruction_threshold: int = 2,
    num_rounds: int = 2,
    num_nodes: int = 4,
    output: str | Path = "",
    **overrides: Any,
) -> tuple[Any, Any]:
    """(ServerApp, ClientApp): the main apps with ``secagg = true`` (for ``run_simulation``).

    ``overrides`` are further run-config keys, e.g. ``{"checkpoint-dir": ...}`` as
    ``**{"checkpoint-dir": path}``; bad combinations raise ``FederationError`` here.
    """
    from .client_app import app as client_app
    from .server_app import make_server_app
    from .settings import settings

    cfg = {
        "secagg": True,
        "secagg-num-shares": num_shares,
        "secagg-threshold": reconstruction_threshold,
        "num-server-rounds": num_rounds,
        "num-nodes": num_nodes,
        "output": str(output),
        **overrides,
    }
    settings(cfg)  # fail now, not inside the simulation
    return make_server_app(**cfg), client_app
