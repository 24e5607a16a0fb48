"""Explanations in words: only the user's own events, LM wording filtered, never sent."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import Ad, Agent, PrivateContext, load_model
from agents import explain_text as et
from agents.context import Event
from agents.distill import Student

ADS = [
    Ad("a1", "running shoes for the trail", 2.0),
    Ad("a2", "a red dress for summer", 2.0),
    Ad("a3", "camping tent for four people", 1.0),
]
HISTORIES = {
    "ann": [("purchase", "trail running shoes"), ("view", "camping tent")],
    "bob": [("view", "red summer dress"), ("search", "vitamin supplements")],
}


@pytest.fixture(scope="module")
def causal():
    return load_model("tiny-causal")


def user(backbone, name: str, scorer: str) -> Agent:
    student = Student.initial(buckets=64, dim=8, rng=0) if scorer == "student" else None
    agent = Agent(backbone, PrivateContext(), scorer=scorer, student=student)
    for t, (kind, text) in enumerate(HISTORIES[name]):
        agent.context.add(kind, text, time=float(t))
    return agent


def other_texts(name: str) -> list[str]:
    return [text for other, h in HISTORIES.items() if other != name for _, text in h]


@pytest.mark.parametrize("scorer", ["embedding", "loglik", "student"])
def test_each_user_hears_only_of_their_own_events(causal, scorer):
    for name in HISTORIES:
        agent = user(causal, name, scorer)
        decision = agent.choose_ad(ADS, rng=0)
        own = {e.text for e in agent.audit()}
        assert own and own <= {text for _, text in HISTORIES[name]}
        for backbone in (None, causal):  # the template, then the tiny LM's wording
            text = agent.explain_in_words(backbone_for_text=backbone)
            assert isinstance(text, str) and text
            for foreign in other_texts(name):
                assert foreign not in text
        template = agent.explain_in_words()
        assert all(t in template for t in own)  # the template names every driving event
        assert ADS[[a.ad_id for a in ADS].index(decision.winner)].text in template
        # nothing of it went into what leaves the device
        assert set(dataclasses.asdict(decision)) == {"winner", "price"}


def test_lm_wording_of_another_users_event_is_dropped(causal, monkeypatch):
    agent = user(causal, "ann", "embedding")
    agent.choose_ad(ADS, rng=0)
    hostile = "viewed camping tent, and searched for vitamin supplements; bought a red dress"
    monkeypatch.setattr(et, "generate", lambda *args, **kwargs: hostile)
    text = agent.explain_in_words(backbone_for_text=causal)
    assert text == "Because you viewed camping tent."
    monkeypatch.setattr(et, "generate", lambda *args, **kwargs: "bought 3 red dresses")
    assert agent.explain_in_words(backbone_for_text=causal).startswith("Shown an ad for")


def test_no_decision_no_events():
    agent = Agent(load_model("tiny-encoder"))
    assert agent.explain_in_words() == (
        "Shown this ad for its bid and general appeal, not for your recent activity."
    )


# Own words from a-m, foreign words from n-z: a foreign word can never pass as an own one.
# Foreign words the filter allows anyway (function words such as "your", the prompt's fixed
# wording) are not foreign: hypothesis drew "your".
ALWAYS_ALLOWED = set(et.FUNCTION_WORDS) | set(et.explanation_prompt([], "").lower().split())
own_words = st.text(st.sampled_from("abcdefghijklm"), min_size=4, max_size=7)
foreign_words = st.text(st.sampled_from("nopqrstuvwxyz"), min_size=4, max_size=7).filter(
    lambda w: w not in ALWAYS_ALLOWED
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(own_words, min_size=1, max_size=3), min_size=1, max_size=4),
    st.lists(st.lists(foreign_words, min_size=1, max_size=3), min_size=1, max_size=4),
    st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.sampled_from([", ", "; ", " and "]))),
)
def test_filtered_wording_never_carries_a_foreign_word(own, foreign, picks):
    events = [Event(i, "view", " ".join(ws), float(i)) for i, ws in enumerate(own)]
    lm_text = "".join(
        (" ".join(own[i % len(own)]) if mine else " ".join(foreign[i % len(foreign)])) + sep
        for mine, i, sep in picks
    )
    kept = et.keep_own_clauses(lm_text, events, "")
    foreign_vocab = {w for ws in foreign for w in ws}
    assert not set(kept.replace(",", " ").split()) & foreign_vocab
    own_clauses = [" ".join(own[i % len(own)]) for mine, i, _ in picks if mine]
    assert all(c in kept for c in own_clauses)  # own clauses are all kept
