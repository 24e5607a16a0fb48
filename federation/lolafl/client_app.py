"""Flower ClientApp of LoLaFL: each train message builds one layer's statistics.

A train message carries the run config (``config``) and, from round 2 on, the layer the
server built last round (``layer``). The client applies it to the features it kept in
``context.state`` (with its labels), computes the statistics of the new features and replies
with its uplink message (``statistics``) and ``metrics``. An evaluate message carries the
whole model (``model``); the client reports its local test accuracy.

The partition comes from ``context.node_config["partition-id"]`` / ``["num-partitions"]``,
so the same app runs in simulation and on SuperNodes.
"""

from __future__ import annotations

import time

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ._records import from_record, to_record
from ._validation import normalize_rows
from .config import RunConfig
from .datasets import ClientData, client_data
from .layer import LayerParams
from .model import LoLaFLModel
from .trainer import client_round

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Apply the broadcast layer (if any) and reply with the next layer's statistics."""
    config = RunConfig.from_mapping(msg.content["config"])
    data = _local_data(config, context)
    start = time.perf_counter()
    if "layer" in msg.content.array_records:
        layer = LayerParams.from_arrays(from_record(msg.content["layer"]))
        features = from_record(context.state["lolafl"])["features"]
    else:
        layer, features = None, normalize_rows(data.train_features)
    features, uplink = client_round(
        features, data.train_labels, layer, data.num_classes, config.settings
    )
    seconds = time.perf_counter() - start
    context.state["lolafl"] = to_record({"features": features})
    metrics = MetricRecord({"num-examples": len(features), "client-seconds": seconds})
    content = RecordDict({"statistics": to_record(uplink.to_arrays()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Reply with the model's accuracy on this client's local test split."""
    config = RunConfig.from_mapping(msg.content["config"])
    data = _local_data(config, context)
    model = LoLaFLModel.from_arrays(from_record(msg.content["model"]))
    n = len(data.test_labels)
    accuracy = model.accuracy(data.test_features, data.test_labels) if n else 0.0
    metrics = MetricRecord({"accuracy": accuracy, "num-examples": n})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


def _local_data(config: RunConfig, context: Context) -> ClientData:
    return client_data(
        config.data,
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        alpha=config.alpha,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
