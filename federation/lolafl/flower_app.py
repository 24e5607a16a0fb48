"""LoLaFL as a real Flower run (Message API): one round per layer, then an evaluation round.

Round l: the server broadcasts the layers built so far; each client maps its private features
through them, computes this layer's statistics (``to_payload``: E_k and C_jk for HM, Gram
factors for CM) and replies; the server aggregates them into layer l. After ``layers`` rounds,
one more round builds the classifier head, and an ``evaluate.lolafl`` round returns each
client's local accuracy. The same apps run in the Simulation Engine and on SuperNodes: a client
reads its partition from ``context.node_config["partition-id"]`` / ``["num-partitions"]``, and
every message carries all it needs (no state between rounds).

Run config keys (``[tool.flwr.app.config]`` or ``flwr run . -c "k=v"``), with defaults:
``lolafl-layers`` 4, ``lolafl-eps2`` 0.5, ``lolafl-eta`` 0.5, ``lolafl-lambda`` 500,
``lolafl-scheme`` "hm", ``lolafl-rank`` 0 (0 = full), ``lolafl-data`` "blobs" (synthetic) or a
path to an ``.npz`` with ``Z`` (m, d) and ``y`` (m,), ``lolafl-alpha`` 1.0 (Dirichlet
partition), ``lolafl-seed`` 0, ``lolafl-output`` "" (a path: the model is saved there as .npz).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from ._errors import LoLaFLError
from .layer import LayerParams, aggregate, apply_layer, from_payload, layer_statistics, to_payload
from .trainer import LoLaFLModel, dirichlet_partition, layer_bytes, normalize_rows

DEFAULTS: dict[str, Any] = {
    "lolafl-layers": 4,
    "lolafl-eps2": 0.5,
    "lolafl-eta": 0.5,
    "lolafl-lambda": 500.0,
    "lolafl-scheme": "hm",
    "lolafl-rank": 0,
    "lolafl-data": "blobs",
    "lolafl-alpha": 1.0,
    "lolafl-seed": 0,
    "lolafl-output": "",
    "lolafl-num-nodes": 0,
}


def settings(run_config: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by the run config; unknown ``lolafl-*`` keys are errors."""
    unknown = sorted(k for k in run_config if k.startswith("lolafl-") and k not in DEFAULTS)
    if unknown:
        raise LoLaFLError(f"unknown run-config keys {unknown}; allowed: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **{k: v for k, v in run_config.items() if k in DEFAULTS}}
    if cfg["lolafl-scheme"] not in ("hm", "cm"):
        raise LoLaFLError(f"lolafl-scheme must be 'hm' or 'cm', got {cfg['lolafl-scheme']!r}")
    return cfg


def blobs(m: int = 600, d: int = 16, classes: int = 4, seed: int = 0):
    """Synthetic Gaussian classes on the unit sphere (the default data of a demo run)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=m)
    centers = rng.normal(size=(classes, d)) * 1.5
    return normalize_rows(centers[y] + rng.normal(size=(m, d))), y


def load_partition(cfg: dict[str, Any], partition_id: int, num_partitions: int):
    """This client's private (features, labels): a seeded Dirichlet share of the data."""
    source = cfg["lolafl-data"]
    if source == "blobs":
        Z, y = blobs(seed=int(cfg["lolafl-seed"]))
    else:
        path = Path(source)
        if not path.is_file():
            raise LoLaFLError(f"lolafl-data: no such file {path} (want 'blobs' or an .npz)")
        with np.load(path) as data:
            Z, y = normalize_rows(data["Z"]), data["y"].astype(np.int64)
    parts = dirichlet_partition(
        y, num_partitions, float(cfg["lolafl-alpha"]), rng=int(cfg["lolafl-seed"])
    )
    idx = parts[partition_id]
    return Z[idx], y[idx], int(y.max()) + 1


def layers_to_record(layers: list[LayerParams]) -> ArrayRecord:
    arrays: dict[str, Array] = {}
    for i, layer in enumerate(layers):
        arrays[f"E.{i}"] = Array(layer.E.astype(np.float32))
        arrays[f"C.{i}"] = Array(layer.C.astype(np.float32))
        arrays[f"gamma.{i}"] = Array(layer.gamma.astype(np.float32))
    return ArrayRecord(arrays)


def record_to_layers(record: ArrayRecord) -> list[LayerParams]:
    count = sum(1 for k in record if k.startswith("E."))
    return [
        LayerParams(
            E=record[f"E.{i}"].numpy().astype(np.float64),
            C=record[f"C.{i}"].numpy().astype(np.float64),
            gamma=record[f"gamma.{i}"].numpy().astype(np.float64),
        )
        for i in range(count)
    ]


# --- client -------------------------------------------------------------------------------

client_app = ClientApp()


def _local(msg: Message, context: Context):
    cfg = settings({**context.run_config, **dict(msg.content["config"])})
    pid = int(context.node_config["partition-id"])
    n = int(context.node_config["num-partitions"])
    Z, y, J = load_partition(cfg, pid, n)
    layers = record_to_layers(msg.content["layers"])
    return cfg, Z, y, J, layers


@client_app.train("lolafl")
def client_statistics(msg: Message, context: Context) -> Message:
    """Map private features through the layers so far; reply with this layer's statistics."""
    cfg, Z, y, J, layers = _local(msg, context)
    for layer in layers:
        Z = apply_layer(Z, layer, eta=float(cfg["lolafl-eta"]), labels=y)
    stats = layer_statistics(Z, y, J, float(cfg["lolafl-eps2"]))
    rank = int(cfg["lolafl-rank"]) or None
    payload = to_payload(stats, cfg["lolafl-scheme"], rank)
    sent = sum(a.nbytes for a in payload.values())
    content = RecordDict(
        {
            "stats": ArrayRecord({k: Array(v) for k, v in payload.items()}),
            "metrics": MetricRecord({"num-examples": stats.m, "bytes-up": sent}),
        }
    )
    return Message(content=content, reply_to=msg)


@client_app.evaluate("lolafl")
def client_accuracy(msg: Message, context: Context) -> Message:
    """Local accuracy of the model (all layers but the last, which is the head)."""
    cfg, Z, y, _, layers = _local(msg, context)
    model = LoLaFLModel(
        layers=layers[:-1],
        head=layers[-1],
        eta=float(cfg["lolafl-eta"]),
        lam=float(cfg["lolafl-lambda"]),
    )
    correct = int((model.predict(Z) == y).sum())
    metrics = MetricRecord({"num-examples": int(y.size), "correct": correct})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


# --- server -------------------------------------------------------------------------------


def _wait_for_nodes(grid: Grid, want: int, timeout: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if nodes and (want <= 0 or len(nodes) >= want):
            return nodes
        if time.monotonic() > deadline:
            raise LoLaFLError(f"only {len(nodes)} of {want} nodes connected within {timeout}s")
        time.sleep(0.5)


def _broadcast(
    grid: Grid, nodes: list[int], kind: str, layers: list[LayerParams], cfg: dict[str, Any]
) -> list[Message]:
    messages = [
        Message(
            content=RecordDict({"layers": layers_to_record(layers), "config": ConfigRecord(cfg)}),
            dst_node_id=node,
            message_type=f"{kind}.lolafl",
        )
        for node in nodes
    ]
    replies = list(grid.send_and_receive(messages))
    failed = [r for r in replies if r.has_error()]
    if failed:
        raise LoLaFLError(f"{len(failed)} client(s) failed: {failed[0].error.reason}")
    return replies


def run_server(grid: Grid, cfg: dict[str, Any]) -> float:
    """Build the layers round by round, then evaluate; save the model if asked.

    Returns the accuracy over all clients' local data.
    """
    nodes = _wait_for_nodes(grid, int(cfg["lolafl-num-nodes"]))
    rank = int(cfg["lolafl-rank"]) or None
    layers: list[LayerParams] = []
    bytes_up, bytes_down = [], []
    for _ in range(int(cfg["lolafl-layers"]) + 1):
        replies = _broadcast(grid, nodes, "train", layers, cfg)
        stats = [
            from_payload(
                {k: a.numpy() for k, a in r.content["stats"].items()}, float(cfg["lolafl-eps2"])
            )
            for r in replies
        ]
        bytes_up.append(sum(int(r.content["metrics"]["bytes-up"]) for r in replies))
        bytes_down.append(sum(layer_bytes(layer) for layer in layers) * len(nodes))
        layers.append(aggregate(stats, scheme=cfg["lolafl-scheme"], rank=rank))
    replies = _broadcast(grid, nodes, "evaluate", layers, cfg)
    correct = sum(int(r.content["metrics"]["correct"]) for r in replies)
    total = sum(int(r.content["metrics"]["num-examples"]) for r in replies)
    accuracy = correct / total
    print(
        f"LoLaFL: {len(layers) - 1} layers + head over {len(nodes)} nodes, accuracy {accuracy:.4f}"
    )
    if cfg["lolafl-output"]:
        out = Path(cfg["lolafl-output"])
        arrays = {k: a.numpy() for k, a in layers_to_record(layers).items()}
        tmp = out.with_name(f".{out.name}.tmp.npz")
        np.savez(tmp, accuracy=accuracy, bytes_up=bytes_up, bytes_down=bytes_down, **arrays)
        os.replace(tmp, out)
    return accuracy


def make_server_app(**overrides: Any) -> ServerApp:
    """A ServerApp whose settings are the run config with ``overrides`` on top
    (``make_server_app(**{"lolafl-layers": 2})``), e.g. for ``run_simulation`` in tests."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, settings({**dict(context.run_config), **overrides}))

    return app


server_app = make_server_app()
