"""Ad scoring by a causal LM's log-likelihood, mapped to a CTR the auction can rank on.

With ``p`` the user's context prompt and ``p0`` the neutral prompt (both from
:mod:`agents.prompts`), an ad's relevance is the mean per-token log-probability (nats) of
the ad's continuation ``x_j`` after the context prompt, less a share ``w`` of its
log-probability after the neutral prompt:

    rel_j = loglik(x_j | p) - w * loglik(x_j | p0),     w in [0, 1] (``baseline_weight``)
    ctr_j = sigmoid(scale * rel_j + prior_weight * r_j + bias)

``w = 1`` is a pointwise mutual information: it removes everything the context does not
explain, including the LM's prior of the ad text (short, common, fluent or popular titles are
likely after any prompt). ``w = 0`` is the plain log-likelihood, which keeps that prior.
Zero-shot on MovieLens the prior is most of what ranks well (popular films are likelier
text): on the tuning users (seeds 10, 11) NDCG@10 fell from 0.31 at ``w = 0`` through 0.28,
0.20 to 0.11 at ``w = 1``, so the default :data:`BASELINE_WEIGHT` is 0 (agents/README.md,
"Neutral-baseline weight", has the sweep and the reported seeds).

Context tokens (``context_tokens = k``): the exact score reruns every token of every ad under
each new context prompt (about 1,500 token positions for 100 ads), which no cache survives. With
``k`` set, only an ad's first ``k`` tokens are scored after the context prompt and the rest
after the neutral prompt, whose values do not depend on the user and are computed once per
ad and adapter version:

    ll_k(x | p) = (sum_{t < k} log p(x_t | p, x_<t) + sum_{t >= k} log p(x_t | p0, x_<t)) / T

At ``k = 1`` a new context costs one run of the prompt (the first token is read from the
prompt's last logits) instead of the prompt plus every candidate; ``k >= T`` is the exact
score. It is an approximation with a price: on the tuning users of MovieLens (seeds 10, 11)
NDCG@10 fell from 0.306 (exact) to 0.244 at ``k = 1`` and 0.256 at ``k = 3``, near the
context-free ranking (0.239), so the default :data:`CONTEXT_TOKENS` is None (exact);
agents/README.md, "Context tokens", has the sweep, the reported seeds and the latencies.

The map reuses the head's scalars (``head.scale`` 4, ``head.bias`` -4 at start,
``head.prior`` 0; the gain vector belongs to the embedding scorer). It is calibrated for the
PMI (``w = 1``): a relevance of 0 gives sigmoid(-4) = 0.018 and 1 nat/token 0.5. For
``w < 1`` the relevance carries ``(1 - w)`` times a log-probability (SmolLM2 on MovieLens
titles: -5.2 to -1.2 nats/token, median -2.1), so the initial head's CTRs are small (the
median gives 4e-6 at ``w = 0``; none fell below ``choose_ad``'s quality floor of 1e-12):
the ranking is unchanged (the map is increasing in rel), the absolute CTR is not calibrated
until the head's bias is fitted.

Explanation: event ``i``'s share is ``scale * (rel(p) - rel(p without event i))`` (leave one
out; the shares need not add up to the logit, unlike the embedding scorer's exact shares).

Example:
    >>> import numpy as np
    >>> from agents.scoring import initial_head
    >>> [round(float(c), 3) for c in loglik_ctr(np.array([0.0, 1.0]), initial_head(4))]
    [0.018, 0.5]
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from ._errors import AgentError
from .context import Event
from .models import Backbone, check_token_count
from .prompts import NEUTRAL_PROMPT, ad_continuation, context_prompt
from .scoring import Explanation

BASELINE_WEIGHT = 0.0
"""Default ``w`` of :func:`relevance` (plain log-likelihood): the best mean NDCG@10 on the
tuning seeds of the sweep in agents/README.md ("Neutral-baseline weight")."""


CONTEXT_TOKENS: int | None = None
"""Default ``k`` of :func:`relevance`: None, every token after the context prompt (the exact
score); an int ``k`` scores each ad's first ``k`` tokens after it and the rest after the
neutral prompt (faster after a context change, less accurate: module docstring)."""


def check_context_tokens(k: int | None) -> int | None:
    """``k`` after checking it is None or an int >= 1."""
    meaning = " (first tokens of each ad scored after the context prompt)"
    return check_token_count(k, "context_tokens", meaning, "every token: the exact score")


def check_baseline_weight(w: float) -> float:
    """``w`` as a float after checking it lies in [0, 1]."""
    if not isinstance(w, numbers.Real) or isinstance(w, bool) or not 0.0 <= w <= 1.0:
        raise AgentError(
            f"baseline_weight must be a number in [0, 1] (0: plain log-likelihood, 1: minus "
            f"the whole neutral-prompt baseline), got {w!r}"
        )
    return float(w)


def relevance(
    backbone: Backbone,
    prompt: str,
    ad_texts: Sequence[str],
    baseline_weight: float = BASELINE_WEIGHT,
    context_tokens: int | None = CONTEXT_TOKENS,
) -> np.ndarray:
    """(n,) ``ll_k(ad | prompt) - w * loglik(ad | neutral prompt)``, nats per token, under the
    backbone's active adapter (token values cached on the backbone; see
    ``Backbone.token_logprobs``).

    Args:
        backbone: a causal backbone.
        prompt: the context prompt (:func:`agents.prompts.context_prompt`).
        ad_texts: the n ads' texts.
        baseline_weight: ``w`` in [0, 1]; at 0 with ``context_tokens=None`` the neutral prompt
            is not run at all.
        context_tokens: ``k``: each ad's first ``k`` tokens scored after ``prompt``, the rest
            after the neutral prompt (module docstring; default :data:`CONTEXT_TOKENS`); None:
            every token after ``prompt`` (the exact score).

    Raises:
        AgentError: ``baseline_weight`` outside [0, 1], ``context_tokens`` not None or >= 1.
    """
    w = check_baseline_weight(baseline_weight)
    k = check_context_tokens(context_tokens)
    conts = [ad_continuation(t) for t in ad_texts]
    if k is None:
        rel = backbone.loglik(prompt, conts)
        return rel - w * backbone.loglik(NEUTRAL_PROMPT, conts) if w else rel.copy()
    neutral = backbone.token_logprobs(NEUTRAL_PROMPT, conts)
    head = backbone.token_logprobs(prompt, conts, max_tokens=k)
    return np.array(
        [
            (first.sum() + rest[len(first) :].sum() - w * rest.sum()) / max(len(rest), 1)
            for first, rest in zip(head, neutral, strict=True)
        ]
    )


def loglik_ctr(
    rel: np.ndarray, head: Mapping[str, np.ndarray], prior: np.ndarray | float = 0.0
) -> np.ndarray:
    """(n,) CTR in (0, 1) from relevances ``rel`` (n,) and the head's scalars; ``prior`` (n,)
    or scalar is the exchange's public prior of each ad."""
    logit = head["head.scale"][0] * rel + head["head.prior"][0] * np.asarray(prior)
    return 1.0 / (1.0 + np.exp(-(logit + head["head.bias"][0])))


def explain_loglik(
    backbone: Backbone,
    events: Sequence[Event],
    ad_text: str,
    head: Mapping[str, np.ndarray],
    *,
    prior: float = 0.0,
    top: int = 3,
    baseline_weight: float = BASELINE_WEIGHT,
    context_tokens: int | None = CONTEXT_TOKENS,
) -> Explanation:
    """The ``top`` events of the prompt whose removal lowers ``ad_text``'s logit the most.

    ``events`` are the ones the prompt names (``prompts.recent``); each costs one prompt run
    (the continuation is a single cached row), so this runs only when an explanation is read.
    The shares do not depend on ``baseline_weight`` (the neutral term cancels in each
    difference); the CTR does. ``context_tokens`` as in :func:`relevance`.
    """
    if top < 0:
        raise AgentError(f"top must be >= 0, got {top}")
    events = list(events)
    w = check_baseline_weight(baseline_weight)

    def rel(prompt: str) -> float:
        return float(relevance(backbone, prompt, [ad_text], w, context_tokens)[0])

    full = rel(context_prompt(events))
    ctr = float(loglik_ctr(np.array([full]), head, prior)[0])
    if not events:
        return Explanation(ctr, (), ())
    without = np.array(
        [rel(context_prompt(events[:i] + events[i + 1 :])) for i in range(len(events))]
    )
    share = head["head.scale"][0] * (full - without)
    order = np.argsort(-share, kind="stable")[:top]
    return Explanation(ctr, tuple(events[i].event_id for i in order), tuple(share[order].tolist()))
