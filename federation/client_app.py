"""The federated ClientApp: local training of the task's arrays on the node's partition.

The same app runs in the Simulation Engine and on SuperNodes: the partition comes from
``context.node_config["partition-id"]`` / ``["num-partitions"]``. Clients chosen as malicious
by the run config (``attack``, ``attack-fraction``, ``seed``) poison what they send.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from .accounting import array_bytes
from .poisoning import attack, flip_labels, malicious_partitions
from .selection import simulated_profile
from .settings import DEFAULTS, settings
from .task import ClickTask

app = ClientApp()


def _setup(msg: Message, context: Context):
    # The server forwards its settings in the message config, so nodes need no run config.
    sent = dict(msg.content["config"]) if "config" in msg.content else {}
    cfg = settings({**dict(context.run_config), **{k: v for k, v in sent.items() if k in DEFAULTS}})
    pid = int(context.node_config["partition-id"])
    n = int(context.node_config["num-partitions"])
    task = ClickTask(seed=int(cfg["seed"]))
    arrays = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    return cfg, pid, n, task, task.load(pid, n), arrays


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train locally from the global arrays; reply with the new arrays and metrics."""
    cfg, pid, n, task, data, arrays = _setup(msg, context)
    config = dict(msg.content["config"]) if "config" in msg.content else {}
    server_round = int(config.get("server-round", 0))
    bad = pid in malicious_partitions(n, float(cfg["attack-fraction"]), int(cfg["seed"]))
    if bad and cfg["attack"] == "label_flip":
        data = replace(data, clicks=flip_labels(data.clicks, 2))
    new, m, metrics = task.train(
        arrays,
        data,
        epochs=int(cfg["local-epochs"]),
        lr=float(config.get("lr", cfg["lr"])),
        proximal_mu=float(config.get("proximal-mu", cfg["proximal-mu"])),
        rng=np.random.default_rng([int(cfg["seed"]), server_round, pid]),
    )
    if bad:
        new = attack(
            cfg["attack"],
            arrays,
            new,
            scale=float(cfg["attack-scale"]),
            rng=[int(cfg["seed"]), server_round, pid],
        )
    sent = array_bytes(new)
    device = simulated_profile(pid, server_round, int(cfg["seed"]))
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in new.items()}),
            "metrics": MetricRecord(
                {
                    "num-examples": m,
                    "bytes-up": sent,
                    "malicious": int(bad),
                    "battery": device.battery,
                    "charging": int(device.charging),
                    "tier": device.tier,
                    **metrics,
                }
            ),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """NDCG@10 and Precision@10 of the global arrays on the node's held-out queries."""
    _, _, _, task, data, arrays = _setup(msg, context)
    metrics = task.evaluate(arrays, data)
    content = RecordDict(
        {"metrics": MetricRecord({"num-examples": int(data.test_ctr.shape[0]), **metrics})}
    )
    return Message(content=content, reply_to=msg)
