"""Flower ServerApp of LoLaFL: one round per layer, then the head, then one evaluation.

Round t sends every node the run config and layer t-1, aggregates the replies into layer t
(HM-like or CM-based) and keeps it; round L+1 builds the classifier head. All connected nodes
take part in every round (the HM and CM aggregates are exact only over all of the data). The
model is then sent once for local evaluation. With ``lolafl-output`` set, ``model.npz`` and
``summary.json`` (config, bytes per round, accuracy) are written there.

``app`` reads its :class:`RunConfig` from the run config (``[tool.flwr.app.config]``,
``flwr run -c``); :func:`make_server_app` fixes one instead (tests, scripts).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from ._records import from_record, to_record
from .aggregation import aggregate_messages
from .config import RunConfig
from .layer import LayerParams
from .messages import message_from_arrays
from .model import LoLaFLModel


def make_server_app(config: RunConfig | None = None) -> ServerApp:
    """A ServerApp running LoLaFL with ``config`` (None: read it from the run config)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_lolafl(grid, config or RunConfig.from_mapping(context.run_config))

    return app


app = make_server_app()


def run_lolafl(grid: Grid, config: RunConfig) -> dict[str, Any]:
    """Build, evaluate and (optionally) save a LoLaFL model over the nodes of ``grid``."""
    settings = config.settings
    nodes = _wait_for_nodes(grid, config.min_nodes)
    base = {"config": ConfigRecord(config.to_mapping())}
    layers: list[LayerParams] = []
    rounds = []
    for t in range(1, settings.num_layers + 2):
        content = RecordDict(
            base | ({"layer": to_record(layers[-1].to_arrays())} if layers else {})
        )
        replies = _exchange(grid, content, nodes, MessageType.TRAIN)
        uplinks = [
            message_from_arrays(settings.scheme, from_record(r.content["statistics"]))
            for r in replies
        ]
        start = time.perf_counter()
        layers.append(aggregate_messages(uplinks))
        rounds.append(
            {
                "round": t,
                "uplink_bytes": [r.content["statistics"].count_bytes() for r in replies],
                "downlink_bytes": to_record(layers[-1].to_arrays()).count_bytes(),
                "client_seconds": [r.content["metrics"]["client-seconds"] for r in replies],
                "server_seconds": time.perf_counter() - start,
            }
        )
        log(
            INFO,
            "LoLaFL round %d/%d: layer built from %d nodes",
            t,
            settings.num_layers + 1,
            len(nodes),
        )
    model = LoLaFLModel.from_layers(layers, settings)
    replies = _exchange(
        grid,
        RecordDict(base | {"model": to_record(model.to_arrays())}),
        nodes,
        MessageType.EVALUATE,
    )
    metrics = [r.content["metrics"] for r in replies]
    examples = sum(int(m["num-examples"]) for m in metrics)
    accuracy = sum(m["accuracy"] * m["num-examples"] for m in metrics) / max(examples, 1)
    log(INFO, "LoLaFL: local test accuracy %.4f over %d examples", accuracy, examples)
    summary = {
        "config": config.to_mapping(),
        "nodes": len(nodes),
        "rounds": rounds,
        "test_accuracy": accuracy,
        "test_examples": examples,
    }
    if config.output:
        _write_outputs(Path(config.output), model, summary)
    return summary


def _wait_for_nodes(grid: Grid, minimum: int) -> list[int]:
    while len(nodes := sorted(grid.get_node_ids())) < minimum:
        log(INFO, "LoLaFL: %d of %d nodes connected, waiting", len(nodes), minimum)
        time.sleep(1)
    return nodes


def _exchange(grid: Grid, content: RecordDict, nodes: list[int], kind: str) -> list[Message]:
    """Send ``content`` to every node and return the replies; any failed reply is an error."""
    messages = [Message(content=content, message_type=kind, dst_node_id=n) for n in nodes]
    replies = list(grid.send_and_receive(messages))
    failed = [r.error.reason for r in replies if r.has_error()]
    if failed or len(replies) != len(nodes):
        raise RuntimeError(
            f"LoLaFL needs every node each round: {len(replies)} of {len(nodes)} replied, "
            f"errors: {failed}"
        )
    return replies


def _write_outputs(folder: Path, model: LoLaFLModel, summary: dict[str, Any]) -> None:
    model.save(folder / "model.npz")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".summary.json.")
    with os.fdopen(fd, "w") as fh:
        json.dump(summary, fh, indent=2)
    os.replace(tmp, folder / "summary.json")
