"""Explanations in words, made on the device for the user and returned to the caller only.

:func:`explain_in_words` turns the events behind a decision (``Agent.audit``: looked up by the
:class:`~agents.scoring.Explanation`'s event ids in the user's own context) into a sentence.
With a causal backbone the LM words it (:func:`agents.generate.generate`, greedy, seeded, on
:func:`agents.prompts.explanation_prompt`); otherwise, or when nothing the LM wrote passes the
filter below, a template says it.

The filter (the rule that keeps every explanation to the user's own events): the LM's text is
cut into clauses at ``, ; . ! ?``, ``and`` and line breaks, and a clause is kept only if each of
its words (lower-cased runs of letters and digits) is a word of this user's own context events,
of the shown ad, of the prompt's fixed wording, or of :data:`FUNCTION_WORDS`. A clause with any
other word (another user's event, an invented product, a number) is dropped whole, so no
event-like text outside the user's context survives.

The text is never put into a :class:`~agents.agent.Decision` or any message: like the
explanation itself, it would give the context away.

Example:
    >>> from agents.context import Event
    >>> shoes = Event(0, "purchase", "trail running shoes", 0.0)
    >>> explain_in_words([shoes], [shoes], "running socks")
    'Shown an ad for running socks because you recently purchased: trail running shoes.'
    >>> keep_own_clauses("bought trail shoes, and a red dress", [shoes], "running socks")
    'bought trail shoes'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .context import Event
from .generate import generate
from .models import Backbone
from .prompts import VERBS, activity, explanation_prompt

FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "for",
        "to",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "as",
        "so",
        "also",
        "too",
        "because",
        "since",
        "recently",
        "often",
        "just",
        "very",
        "more",
        "most",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "they",
        "their",
        "them",
        "he",
        "she",
        "his",
        "her",
        "you",
        "your",
        "user",
        "users",
        "who",
        "which",
        "was",
        "were",
        "is",
        "are",
        "be",
        "been",
        "has",
        "have",
        "had",
        "likes",
        "like",
        "liked",
        "wants",
        "want",
        "wanted",
        "needs",
        "need",
        "may",
        "might",
        "would",
        "could",
        "interested",
        "interest",
        "similar",
        "items",
        "item",
        "things",
        "thing",
        "ad",
        "ads",
        "shown",
        "show",
        "bought",
        "buy",
        "looked",
        "looking",
    ]
)
_CLAUSE = re.compile(r"[,;.!?\n]+|\band\b")
_WORD = re.compile(r"[a-z0-9]+")
_FIXED = explanation_prompt([], "")  # the prompt's own wording, without events or ad


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def keep_own_clauses(text: str, context_events: Sequence[Event], ad_text: str) -> str:
    """The clauses of ``text`` whose every word is allowed (see the module docstring), joined
    with ``", "``; ``""`` when none is."""
    allowed = set(FUNCTION_WORDS) | _words(ad_text) | _words(_FIXED)
    allowed |= _words(" ".join(VERBS.values()))
    for event in context_events:
        allowed |= _words(event.text)
    kept = [c.strip() for c in _CLAUSE.split(text) if c.strip() and _words(c) <= allowed]
    return ", ".join(kept)


def template(events: Sequence[Event], ad_text: str) -> str:
    """The sentence without an LM: the ad and the events that drove it, with their verbs."""
    what = f"an ad for {ad_text.strip()}" if ad_text.strip() else "this ad"
    if not events:
        return f"Shown {what} for its bid and general appeal, not for your recent activity."
    return f"Shown {what} because you recently {activity(events)}."


def explain_in_words(
    events: Sequence[Event],
    context_events: Sequence[Event],
    ad_text: str = "",
    *,
    backbone_for_text: Backbone | None = None,
    max_new_tokens: int = 32,
    seed: int = 0,
) -> str:
    """A sentence for the user about why ``ad_text`` was shown.

    Args:
        events: the events that drove the decision, most important first (``Agent.audit``).
        context_events: all of this user's own events (what the filter allows words from).
        ad_text: the shown ad ("" when unknown).
        backbone_for_text: a causal backbone to word the sentence (default: the template).
        max_new_tokens: most tokens the LM writes.
        seed: the generation seed (greedy decoding ignores it; kept for sampled wording).

    Returns:
        The LM's filtered wording (``"Because you ..."``), or the template sentence when
        there is no LM, no driving event, or no clause passes the filter.
    """
    if backbone_for_text is None or not events:
        return template(events, ad_text)
    prompt = explanation_prompt(events, ad_text)
    worded = generate(backbone_for_text, prompt, max_new_tokens=max_new_tokens, seed=seed)
    kept = keep_own_clauses(worded, context_events, ad_text)
    return f"Because you {kept}." if kept else template(events, ad_text)
