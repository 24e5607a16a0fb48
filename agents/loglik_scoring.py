"""Ad scoring by a causal LM's log-likelihood, mapped to a CTR the auction can rank on.

With ``p`` the user's context prompt and ``p0`` the neutral prompt (both from
:mod:`agents.prompts`), an ad's relevance is how much the user's context raises the mean
per-token log-probability (nats) of the ad's continuation ``x_j``:

    rel_j = loglik(x_j | p) - loglik(x_j | p0)
    ctr_j = sigmoid(scale * rel_j + prior_weight * r_j + bias)

Subtracting the neutral baseline (a pointwise mutual information) removes what the context
does not explain: short, common or fluent ad texts are likely after any prompt. The map reuses
the head's scalars (``head.scale`` 4, ``head.bias`` -4 at start, ``head.prior`` 0; the gain
vector belongs to the embedding scorer), so a relevance of 0 gives sigmoid(-4) = 0.018 and a
relevance of 1 nat/token gives 0.5: a CTR-like quality in (0, 1), increasing in rel.

Explanation: event ``i``'s share is ``scale * (rel(p) - rel(p without event i))`` (leave one
out; the shares need not add up to the logit, unlike the embedding scorer's exact shares).

Example:
    >>> import numpy as np
    >>> from agents.scoring import initial_head
    >>> [round(float(c), 3) for c in loglik_ctr(np.array([0.0, 1.0]), initial_head(4))]
    [0.018, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._errors import AgentError
from .context import Event
from .models import Backbone
from .prompts import NEUTRAL_PROMPT, ad_continuation, context_prompt
from .scoring import Explanation


def relevance(backbone: Backbone, prompt: str, ad_texts: Sequence[str]) -> np.ndarray:
    """(n,) ``loglik(ad | prompt) - loglik(ad | neutral prompt)``, nats per token, under the
    backbone's active adapter (both cached on the backbone; see ``Backbone.loglik``)."""
    conts = [ad_continuation(t) for t in ad_texts]
    return backbone.loglik(prompt, conts) - backbone.loglik(NEUTRAL_PROMPT, conts)


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
) -> Explanation:
    """The ``top`` events of the prompt whose removal lowers ``ad_text``'s logit the most.

    ``events`` are the ones the prompt names (``prompts.recent``); each costs one prompt run
    (the continuation is a single cached row), so this runs only when an explanation is read.
    """
    if top < 0:
        raise AgentError(f"top must be >= 0, got {top}")
    events = list(events)
    full = float(relevance(backbone, context_prompt(events), [ad_text])[0])
    ctr = float(loglik_ctr(np.array([full]), head, prior)[0])
    if not events:
        return Explanation(ctr, (), ())
    without = np.array(
        [
            relevance(backbone, context_prompt(events[:i] + events[i + 1 :]), [ad_text])[0]
            for i in range(len(events))
        ]
    )
    share = head["head.scale"][0] * (full - without)
    order = np.argsort(-share, kind="stable")[:top]
    return Explanation(ctr, tuple(events[i].event_id for i in order), tuple(share[order].tolist()))
