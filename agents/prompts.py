"""Prompt templates for causal-LM agents, in one place: scoring and explanation prompts.

A causal-LM agent scores an ad by the log-likelihood of a continuation naming the ad after a
prompt built from the user's private context; it explains a decision by asking the LM to word
a sentence about the events that drove it. Both prompts are built here and nowhere else.

Scoring (:func:`context_prompt` + :func:`ad_continuation`)::

    The user recently viewed: red summer dress; purchased: coffee beans.
    The user would click on an ad for: <ad text>

The newest ``max_events`` scored events, grouped by kind (the kind of the newest event first,
newest first within a kind), with their past-tense verbs. An empty context gives
:data:`NEUTRAL_PROMPT`, which is also the baseline every ad's log-likelihood is measured
against (see :mod:`agents.loglik_scoring`).

Explanation (:func:`explanation_prompt`): the same list of the driving events, the ad, and
an opening the LM completes.

The prompts are built on the device from the private context and go into the local model
only; they never leave the device.

Example:
    >>> from agents.context import PrivateContext
    >>> ctx = PrivateContext()
    >>> _ = ctx.add("view", "red summer dress", time=0.0)
    >>> _ = ctx.add("purchase", "coffee beans", time=1.0)
    >>> print(context_prompt(ctx.scored_events()))
    The user recently purchased: coffee beans; viewed: red summer dress.
    The user would click on an ad for:
    >>> ad_continuation("  trail shoes ")
    ' trail shoes'
"""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import AgentError
from .context import Event

VERBS = {
    "view": "viewed",
    "search": "searched for",
    "share": "was shown by a friend",
    "click": "clicked",
    "cart": "added to cart",
    "purchase": "purchased",
}
CLICK_CUE = "The user would click on an ad for:"
NEUTRAL_PROMPT = f"The user has no recent activity.\n{CLICK_CUE}"
MAX_EVENTS = 10


def recent(events: Sequence[Event], max_events: int = MAX_EVENTS) -> list[Event]:
    """The newest ``max_events`` of ``events``, newest first (ties: later in the list first)."""
    if max_events < 1:
        raise AgentError(f"max_events must be >= 1, got {max_events}")
    order = sorted(range(len(events)), key=lambda i: (events[i].time, i), reverse=True)
    return [events[i] for i in order[:max_events]]


def activity(events: Sequence[Event]) -> str:
    """``"purchased: a, b; viewed: c"``: ``events`` (newest first) grouped by kind, the kind of
    the newest event first; texts keep their order within a kind."""
    groups: dict[str, list[str]] = {}
    for e in events:
        groups.setdefault(e.kind, []).append(e.text.strip())
    return "; ".join(f"{VERBS[kind]}: {', '.join(texts)}" for kind, texts in groups.items())


def context_prompt(events: Sequence[Event], max_events: int = MAX_EVENTS) -> str:
    """The scoring prompt from a user's scored events (see the module docstring).

    Args:
        events: the events that count (``PrivateContext.scored_events()``), any order.
        max_events: newest events named, >= 1.
    """
    newest = recent(events, max_events)
    if not newest:
        return NEUTRAL_PROMPT
    return f"The user recently {activity(newest)}.\n{CLICK_CUE}"


def ad_continuation(ad_text: str) -> str:
    """The continuation scored after :func:`context_prompt`: a space, then the ad text."""
    return " " + ad_text.strip()


def explanation_prompt(events: Sequence[Event], ad_text: str) -> str:
    """The prompt an LM completes into one sentence explaining why ``ad_text`` was shown,
    naming ``events`` (the driving events, most important first)."""
    return (
        f"The user recently {activity(events)}.\n"
        f"The user was shown an ad for: {ad_text.strip()}.\n"
        "In one sentence, why this ad: because the user"
    )
