"""Predicted CTR from embeddings: a context vector, a calibrated head, per-event attributions.

With event embeddings ``E`` (m, d), event weights ``w`` (m,) and ad embeddings ``A`` (n, d)
(all rows unit-norm), the context vector is ``c = sum_i w_i E_i / ||sum_i w_i E_i||`` and

    logit_j = scale * <c * g, A_j> + bias,        ctr_j = sigmoid(logit_j)

where the head ``(g (d,), scale, bias)`` starts at ``g = 1`` (cosine similarity) and is fitted
on clicks (binary cross-entropy, i.e. calibrated). The logit is linear in the events, so
``scale * w_i <E_i * g, A_j> / ||sum_i w_i E_i||`` is event ``i``'s exact share of it: that is
the explanation of a decision.

Example:
    >>> e = np.eye(3, dtype=np.float32)
    >>> c = context_vector(e[:2], np.array([1.0, 1.0]))
    >>> [round(float(p), 3) for p in predict_ctr(c, e, initial_head(3))]
    [0.237, 0.237, 0.018]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._errors import AgentError

INITIAL_SCALE = 4.0
INITIAL_BIAS = -4.0
HEAD_KEYS = ("head.gain", "head.scale", "head.bias")


@dataclass(frozen=True)
class Explanation:
    """Why an ad scored what it did: the context events that drove it, by local event id.

    Holds ids and numbers only, never event content: the user looks the ids up on the device.
    """

    predicted_ctr: float
    event_ids: tuple[int, ...]
    contributions: tuple[float, ...]  # each event's share of the logit, largest first


def initial_head(dim: int) -> dict[str, np.ndarray]:
    """Head state before training: plain cosine similarity through a fixed sigmoid."""
    return {
        "head.gain": np.ones(dim, dtype=np.float32),
        "head.scale": np.array([INITIAL_SCALE], dtype=np.float32),
        "head.bias": np.array([INITIAL_BIAS], dtype=np.float32),
    }


def context_vector(events: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(d,) unit-norm weighted mean of event embeddings ``events`` (m, d); zeros if m = 0."""
    if len(events) == 0:
        return np.zeros(events.shape[1], dtype=np.float32)
    v = weights.astype(np.float32) @ events
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def logits(context: np.ndarray, ads: np.ndarray, head: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) logits of ads (n, d) for a context vector (d,)."""
    return head["head.scale"][0] * (ads @ (context * head["head.gain"])) + head["head.bias"][0]


def predict_ctr(context: np.ndarray, ads: np.ndarray, head: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) predicted click probabilities, in (0, 1)."""
    return 1.0 / (1.0 + np.exp(-logits(context, ads, head)))


def torch_logits(
    context: torch.Tensor, ads: torch.Tensor, head: dict[str, torch.Tensor]
) -> torch.Tensor:
    """The same logits as :func:`logits` in torch (for training): context and ads (..., d)."""
    return (
        head["head.scale"][0] * (ads * context * head["head.gain"]).sum(-1) + head["head.bias"][0]
    )


def explain(
    events: np.ndarray,
    weights: np.ndarray,
    event_ids: list[int],
    ad: np.ndarray,
    head: dict[str, np.ndarray],
    top: int = 3,
) -> Explanation:
    """The ``top`` events with the largest share of ``ad``'s logit (see module docstring)."""
    if top < 0:
        raise AgentError(f"top must be >= 0, got {top}")
    ctr = float(predict_ctr(context_vector(events, weights), ad[None], head)[0])
    if len(events) == 0:
        return Explanation(ctr, (), ())
    v = weights.astype(np.float32) @ events
    norm = float(np.linalg.norm(v)) or 1.0
    share = head["head.scale"][0] * weights * (events @ (ad * head["head.gain"])) / norm
    order = np.argsort(-share, kind="stable")[:top]
    return Explanation(
        ctr, tuple(int(event_ids[i]) for i in order), tuple(float(share[i]) for i in order)
    )
