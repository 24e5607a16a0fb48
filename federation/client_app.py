"""The federated ClientApp: local training of the task's arrays on the node's partition.

The same app runs in the Simulation Engine and on SuperNodes: the partition comes from
``context.node_config["partition-id"]`` / ``["num-partitions"]``. The task (``task`` in the
run config: the click model or the agents' LoRA adapter + head) is built once per process.
Clients chosen as malicious by the run config (``attack``, ``attack-fraction``, ``seed``)
poison what they send.

Two message formats arrive here: the Message API's (``arrays`` + ``config`` records) and,
under ``secagg = true``, the legacy ``fitins``/``evaluateins`` records of Flower's SecAgg+
workflow; ``secagg.secagg_when_asked`` runs Flower's ``secaggplus_mod`` only on the SecAgg+
stages, so the one app serves both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from . import secagg
from .accounting import array_bytes
from .poisoning import attack, malicious_partitions
from .selection import simulated_profile
from .settings import DEFAULTS, settings
from .task import make_task

app = ClientApp()


def _setup(msg: Message, context: Context):
    """(settings, server round, partition id, partitions, global arrays, legacy message?)."""
    legacy = secagg.is_legacy(msg)
    if legacy:
        arrays_list, sent = secagg.read_legacy(msg)
    else:
        sent = dict(msg.content["config"]) if "config" in msg.content else {}
    # The server forwards its settings in the message config, so nodes need no run config.
    cfg = settings({**dict(context.run_config), **{k: v for k, v in sent.items() if k in DEFAULTS}})
    if legacy:
        arrays = dict(zip(sorted(make_task(cfg).initial_arrays()), arrays_list, strict=True))
    else:
        arrays = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    if context.node_config.get("device-store"):  # a device's own store wins over the run's
        cfg = {**cfg, "device-store": str(context.node_config["device-store"])}
    pid = int(context.node_config["partition-id"])
    n = int(context.node_config["num-partitions"])
    return cfg, int(sent.get("server-round", 0)), pid, n, arrays, legacy


def client_update(
    cfg: dict[str, Any],
    partition_id: int,
    num_partitions: int,
    arrays: dict[str, np.ndarray],
    server_round: int,
) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
    """One client's round: train its partition from ``arrays`` (poisoned if the partition is
    malicious); returns (new arrays, num examples, metrics incl. bytes up/down, and the
    device profile when energy-aware selection asks for it). Under DP the un-noised
    ``train_loss`` stays on the node.

    Deterministic given ``cfg["seed"]``, the round and the partition, so a test can compute
    exactly what a Flower node sends (the SecAgg+ test does).
    """
    task = make_task(cfg)
    data = task.load(partition_id, num_partitions)
    bad = partition_id in malicious_partitions(
        num_partitions, float(cfg["attack-fraction"]), int(cfg["seed"])
    )
    if bad and cfg["attack"] == "label_flip":
        data = task.flip_labels(data)
    seed = [int(cfg["seed"]), int(server_round), int(partition_id)]
    new, m, trained = task.train(
        arrays,
        data,
        epochs=int(cfg["local-epochs"]),
        lr=float(cfg["lr"] if cfg["task"] == "click" else cfg["agent-lr"]),
        proximal_mu=float(cfg["proximal-mu"]),
        rng=np.random.default_rng(seed),
    )
    if bad:
        new = attack(cfg["attack"], arrays, new, scale=float(cfg["attack-scale"]), rng=seed)
    if cfg["dp"] != "none" or float(cfg["dp-sgd-noise-multiplier"]) > 0:
        trained.pop("train_loss", None)  # an un-noised statistic of the private data
    metrics = {"num-examples": m, "bytes-up": array_bytes(new), "bytes-down": array_bytes(arrays)}
    if int(cfg["clients-per-round"]) > 0:  # what energy-aware selection asks of a device
        device = simulated_profile(partition_id, server_round, int(cfg["seed"]))
        metrics.update(battery=device.battery, charging=int(device.charging), tier=device.tier)
    return new, m, {**metrics, **trained}


def _lolafl(msg: Message) -> bool:
    """Whether ``msg`` is LoLaFL's (``method = "lolafl"``: its config holds ``lolafl-`` keys)."""
    config = msg.content.config_records.get("config") if msg.has_content() else None
    return config is not None and any(k.startswith("lolafl-") for k in config)


def clip_when_asked(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` on the train messages that carry a clipping norm (a
    client-side DP wrapper's): the update that leaves the node has L2 norm <= that norm."""
    from flwr.clientapp.mod import fixedclipping_mod
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    config = msg.content.config_records.get("config") if msg.has_content() else None
    out = call_next(msg, context)
    if config is None or KEY_CLIPPING_NORM not in config or out.has_error():
        return out
    sent = next(iter(msg.content.array_records.values()))
    back = next(iter(out.content.array_records.values()), None) if out.has_content() else None
    norm = float(config[KEY_CLIPPING_NORM])
    if back is not None and _keys_match(sent, back) and _update_norm(sent, back) <= norm:
        # within the norm the clip is the identity; Flower's would divide by a norm that
        # squares to 0 for a tiny (or a declined, unchanged) update
        return out
    return fixedclipping_mod(msg, context, lambda _msg, _context: out)


def _keys_match(sent: ArrayRecord, back: ArrayRecord) -> bool:
    """Whether the reply holds exactly the arrays that were sent, with their shapes."""
    return list(sent) == list(back) and all(sent[k].shape == back[k].shape for k in sent)


def _update_norm(sent: ArrayRecord, back: ArrayRecord) -> float:
    """L2 norm of ``back - sent`` over all arrays, in float64 with scaling so a tiny update
    does not square to 0 (Flower's clip computes it in the arrays' own dtype)."""
    diffs = [
        (back[k].numpy().astype(np.float64) - sent[k].numpy().astype(np.float64)).ravel()
        for k in sent
    ]
    return float(np.linalg.norm(np.concatenate(diffs))) if diffs else 0.0


@app.train(mods=[secagg.secagg_when_asked, clip_when_asked])
def train(msg: Message, context: Context) -> Message:
    """Train locally from the global arrays; reply with the new arrays and metrics."""
    if _lolafl(msg):
        from .lolafl.client_app import app as lolafl_app

        return lolafl_app(msg, context)
    cfg, server_round, pid, n, arrays, legacy = _setup(msg, context)
    new, m, metrics = client_update(cfg, pid, n, arrays, server_round)
    order = [*arrays, *(k for k in new if k not in arrays)]
    if legacy:
        content = secagg.legacy_fit_reply([new[k] for k in sorted(new)], m, metrics)
    else:
        content = RecordDict(
            {
                # in the order received: Flower's clipping mod pairs arrays by position
                "arrays": ArrayRecord({k: Array(new[k]) for k in sorted(new, key=order.index)}),
                "metrics": MetricRecord(metrics),
            }
        )
    return Message(content=content, reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Who this node is: its ``partition-id`` (the device's public id, which the exchange needs
    to address and pay it) and the federation's ``num-partitions``."""
    ids = {k: int(context.node_config[k]) for k in ("partition-id", "num-partitions")}
    return Message(content=RecordDict({"node": MetricRecord(ids)}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """NDCG@10 and Precision@10 of the global arrays on the node's held-out queries."""
    if _lolafl(msg):
        from .lolafl.client_app import app as lolafl_app

        return lolafl_app(msg, context)
    cfg, _, pid, n, arrays, legacy = _setup(msg, context)
    task = make_task(cfg)
    data = task.load(pid, n)
    metrics = task.evaluate(arrays, data)
    size = task.num_eval(data)
    if legacy:
        content = secagg.legacy_evaluate_reply(1.0 - metrics["ndcg@10"], size, metrics)
    else:
        content = RecordDict({"metrics": MetricRecord({"num-examples": size, **metrics})})
    return Message(content=content, reply_to=msg)
