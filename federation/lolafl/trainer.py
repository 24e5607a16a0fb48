"""The layer-wise federated protocol, run in one process: one round per layer plus the head.

Round t (t = 1..L+1): each client applies layer t-1 (if any) to its features with its own
labels, computes that layer's statistics and uploads the message of the scheme; the server
aggregates them into layer t and broadcasts it. The (L+1)-th layer is the classifier head.
The Flower apps run the same two steps (:func:`client_round`, ``aggregate_messages``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import LoLaFLError
from ._validation import as_labels, normalize_rows
from .aggregation import aggregate_messages
from .layer import LayerParams, apply_layer
from .messages import CMMessage, HMMessage
from .model import LoLaFLModel
from .settings import LoLaFLSettings
from .statistics import layer_statistics


@dataclass(frozen=True)
class RoundLog:
    """Cost of one round.

    Attributes:
        round: 1-based round number (round L+1 builds the head).
        uplink_values: scalars each client uploaded, in client order.
        downlink_values: scalars the server broadcast (the layer it built).
        client_seconds: wall seconds each client computed (apply previous layer + statistics).
        server_seconds: wall seconds the server aggregated.
    """

    round: int
    uplink_values: tuple[int, ...]
    downlink_values: int
    client_seconds: tuple[float, ...]
    server_seconds: float


@dataclass(frozen=True)
class FitResult:
    """A trained model and the cost of each round that built it."""

    model: LoLaFLModel
    rounds: tuple[RoundLog, ...]


def client_round(
    features: np.ndarray,
    labels: np.ndarray,
    layer: LayerParams | None,
    num_classes: int,
    settings: LoLaFLSettings,
) -> tuple[np.ndarray, HMMessage | CMMessage]:
    """One client's round: apply the previous ``layer`` (if any), then build the uplink.

    Args:
        features: (m_k, d) float, the client's current features, unit-norm rows.
        labels: (m_k,) int class per row.
        layer: the layer the server broadcast last round; None in round 1.
        num_classes: J.
        settings: the run's hyperparameters.

    Returns:
        The client's new features (m_k, d) and its message for this round.
    """
    if layer is not None:
        features = apply_layer(features, layer, settings.eta, labels=labels)
    stats = layer_statistics(features, labels, num_classes, settings.eps2)
    return features, stats.message(settings.scheme, settings.rank)


def fit(
    clients: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    settings: LoLaFLSettings | None = None,
) -> FitResult:
    """Build a LoLaFL network over ``clients`` in L+1 rounds, with no backpropagation.

    Args:
        clients: per client ``(features (m_k, d), labels (m_k,))``; features are normalized
            row-wise first. One client is centralized training.
        num_classes: J; every class must occur at some client.
        settings: hyperparameters (defaults: :class:`LoLaFLSettings`).

    Example: ``fit([(Z1, y1), (Z2, y2)], 3).model.predict(Z_test)``.
    """
    settings = settings or LoLaFLSettings()
    if not clients:
        raise LoLaFLError("clients must hold at least one (features, labels) pair")
    features = [normalize_rows(Z) for Z, _ in clients]
    labels = [
        as_labels(y, Z.shape[0], num_classes) for Z, (_, y) in zip(features, clients, strict=True)
    ]
    layers: list[LayerParams] = []
    rounds: list[RoundLog] = []
    for t in range(1, settings.num_layers + 2):
        previous = layers[-1] if layers else None
        messages, seconds = [], []
        for k in range(len(clients)):
            start = time.perf_counter()
            features[k], msg = client_round(features[k], labels[k], previous, num_classes, settings)
            seconds.append(time.perf_counter() - start)
            messages.append(msg)
        start = time.perf_counter()
        layer = aggregate_messages(messages)
        server_seconds = time.perf_counter() - start
        layers.append(layer)
        rounds.append(
            RoundLog(
                round=t,
                uplink_values=tuple(msg.num_values for msg in messages),
                downlink_values=layer.num_values,
                client_seconds=tuple(seconds),
                server_seconds=server_seconds,
            )
        )
    model = LoLaFLModel.from_layers(layers, settings)
    return FitResult(model=model, rounds=tuple(rounds))
