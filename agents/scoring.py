"""Predicted CTR from embeddings: a context vector, a calibrated head, per-event attributions.

With event embeddings ``E`` (m, d), event weights ``w`` (m,) and ad embeddings ``A`` (n, d)
(all rows unit-norm), the context vector is ``c = sum_i w_i E_i / ||sum_i w_i E_i||`` and

    logit_j = scale * <c * g, A_j> + prior_weight * r_j + bias,        ctr_j = sigmoid(logit_j)

where ``r_j`` is the exchange's public prior of ad ``j`` (e.g. the log of its past clicks over
all users: what the exchange learns from the ``(ad_id, price, click)`` reports; 0 when unknown)
and the head ``(g (d,), scale, prior_weight, bias)`` starts at ``g = 1``, ``prior_weight = 0``
(plain cosine similarity) and is fitted on clicks (binary cross-entropy, i.e. calibrated). The
logit is linear in the events, so ``scale * w_i <E_i * g, A_j> / ||sum_i w_i E_i||`` is event
``i``'s exact share of it: that is the explanation of a decision.

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
HEAD_KEYS = ("head.gain", "head.scale", "head.bias", "head.prior")


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
        "head.prior": np.zeros(1, dtype=np.float32),
    }


def context_vector(events: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(d,) unit-norm weighted mean of event embeddings ``events`` (m, d); zeros if m = 0."""
    if len(events) == 0:
        return np.zeros(events.shape[1], dtype=np.float32)
    return _unit_sum(events, weights)[0]


def _unit_sum(events: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """The context vector (d,) of m >= 1 events and the norm of ``sum_i w_i E_i`` (float32)."""
    v = weights.astype(np.float32) @ events
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v), norm


def logits(
    context: np.ndarray,
    ads: np.ndarray,
    head: dict[str, np.ndarray],
    prior: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(n,) logits of ads (n, d) for a context vector (d,); ``prior``: (n,) or scalar."""
    relevance = head["head.scale"][0] * (ads @ (context * head["head.gain"]))
    return relevance + head["head.prior"][0] * np.asarray(prior) + head["head.bias"][0]


def predict_ctr(
    context: np.ndarray,
    ads: np.ndarray,
    head: dict[str, np.ndarray],
    prior: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(n,) predicted click probabilities, in (0, 1)."""
    return 1.0 / (1.0 + np.exp(-logits(context, ads, head, prior)))


def torch_logits(
    context: torch.Tensor,
    ads: torch.Tensor,
    head: dict[str, torch.Tensor],
    prior: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """The same logits as :func:`logits` in torch (for training): context and ads (..., d)."""
    relevance = head["head.scale"][0] * (ads * context * head["head.gain"]).sum(-1)
    return relevance + head["head.prior"][0] * prior + head["head.bias"][0]


def explain(
    events: np.ndarray,
    weights: np.ndarray,
    event_ids: list[int],
    ad: np.ndarray,
    head: dict[str, np.ndarray],
    top: int = 3,
    prior: float = 0.0,
) -> Explanation:
    """The ``top`` events with the largest share of ``ad``'s logit (see module docstring).

    The prior's share, ``prior_weight * prior``, belongs to no event: it is in
    ``predicted_ctr`` but not in the contributions.
    """
    if top < 0:
        raise AgentError(f"top must be >= 0, got {top}")
    if len(events) == 0:
        ctr = float(predict_ctr(context_vector(events, weights), ad[None], head, prior)[0])
        return Explanation(ctr, (), ())
    context, norm = _unit_sum(events, weights)
    ctr = float(predict_ctr(context, ad[None], head, prior)[0])
    share = head["head.scale"][0] * weights * (events @ (ad * head["head.gain"])) / (norm or 1.0)
    order = np.argsort(-share, kind="stable")[:top]
    return Explanation(ctr, tuple(int(event_ids[i]) for i in order), tuple(share[order].tolist()))
