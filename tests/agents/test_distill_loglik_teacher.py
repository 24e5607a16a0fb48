"""distill_lists: each pseudo-context labelled on its own candidate list (the SmolLM2 fast
path's distillation), checked against distill on one shared list and a causal LM teacher."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentError, PrivateContext, load_model
from agents.distill import (
    DistillConfig,
    distill,
    distill_lists,
    loglik_teacher,
    public_contexts,
    teacher_logits,
)

ADS = [
    "red summer dress",
    "red running shoes",
    "blue denim jacket",
    "blue rain coat",
    "espresso coffee beans",
    "green tea leaves",
    "camping tent lantern",
    "hiking trail boots",
]
# pointwise > 0: with the listwise term alone the bias has no gradient, and Adam turns float
# rounding into lr-sized steps of it (so two equal runs would differ there)
CFG = DistillConfig(buckets=128, dim=8, epochs=5, batch_size=4, lr=0.05, pointwise=0.5)


def colour_teacher(context: PrivateContext, ads, priors) -> np.ndarray:
    """Closed form: 2 per word an ad shares with the context's texts, plus the prior."""
    words = {w for e in context.events for w in e.text.split()}
    return np.array([2.0 * len(words & set(a.split())) for a in ads]) + np.asarray(priors)


def _lists(n: int, m: int, seed: int) -> list[list[str]]:
    gen = np.random.default_rng(seed)
    return [[ADS[j] for j in gen.choice(len(ADS), m, replace=False)] for _ in range(n)]


def test_one_shared_list_is_distill():
    """Every context given the same list: the same student as distill (the peer), same seed."""
    ctxs = public_contexts(ADS, 12, 2, rng=1)
    priors = np.linspace(0.0, 1.0, len(ADS)).astype(np.float32)
    ref = distill(colour_teacher, ctxs, ADS, priors, config=CFG, rng=3)
    got = distill_lists(colour_teacher, ctxs, [ADS] * 12, [priors] * 12, config=CFG, rng=3)
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-4)
    for key, value in ref.student.state().items():
        np.testing.assert_allclose(got.student.state()[key], value, rtol=1e-4, atol=1e-5)


def test_teacher_sees_only_each_contexts_list():
    calls = []

    def teacher(context, ads, priors):
        calls.append((id(context), tuple(ads)))
        return colour_teacher(context, ads, priors)

    ctxs, lists = public_contexts(ADS, 5, 2, rng=0), _lists(5, 3, 0)
    distill_lists(teacher, ctxs, lists, config=CFG, rng=0)
    assert calls == [(id(c), tuple(a)) for c, a in zip(ctxs, lists, strict=True)]


def test_student_learns_the_per_list_ranking():
    """Trained on random 3-ad lists, the student ranks all 8 ads for new contexts: the ads
    sharing a word with the context (teacher 2 or more) come first."""
    cfg = DistillConfig(buckets=256, dim=16, epochs=30, batch_size=8, lr=0.05, pointwise=0.0)
    ctxs = public_contexts(ADS, 120, 1, rng=0)
    student = distill_lists(colour_teacher, ctxs, _lists(120, 3, 1), config=cfg, rng=0).student
    hits = []
    for ctx in public_contexts(ADS, 20, 1, rng=9):
        truth = colour_teacher(ctx, ADS, np.zeros(len(ADS)))
        top = np.argsort(-student.logits(ctx, ADS))[: int((truth >= 2).sum())]
        hits.append(float((truth[top] >= 2).mean()))
    assert np.mean(hits) >= 0.9


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_order_within_a_list_does_not_matter(seed: int):
    """The listwise loss is a function of each (ad, target) set: shuffling every list (with
    its priors) leaves the distilled student unchanged up to float rounding."""
    gen = np.random.default_rng(seed)
    ctxs, lists = public_contexts(ADS, 6, 2, rng=seed), _lists(6, 4, seed)
    priors = [gen.random(4).astype(np.float32) for _ in lists]
    perms = [gen.permutation(4) for _ in lists]
    a = distill_lists(colour_teacher, ctxs, lists, priors, config=CFG, rng=seed)
    b = distill_lists(
        colour_teacher,
        ctxs,
        [[row[i] for i in p] for row, p in zip(lists, perms, strict=True)],
        [pr[p] for pr, p in zip(priors, perms, strict=True)],
        config=CFG,
        rng=seed,
    )
    for key, value in a.student.state().items():
        np.testing.assert_allclose(b.student.state()[key], value, rtol=1e-3, atol=1e-4)


def test_causal_lm_teacher_labels_are_its_logliks():
    """tiny-causal's loglik teacher through distill_lists: finite losses, and the student's
    bias starts from the teacher's mean log-probability (negative nats per token)."""
    teacher = loglik_teacher(load_model("tiny-causal"))
    ctxs, lists = public_contexts(ADS, 4, 2, rng=0), _lists(4, 3, 2)
    labels = np.concatenate(
        [teacher_logits(teacher, [c], a) for c, a in zip(ctxs, lists, strict=True)]
    )
    assert labels.shape == (4, 3) and (labels < 0).all()
    cfg = DistillConfig(buckets=64, dim=4, epochs=1, batch_size=4, lr=1e-9, pointwise=0.0)
    res = distill_lists(teacher, ctxs, lists, config=cfg, rng=0)
    assert np.isfinite(res.losses).all()
    assert res.student.state()["student.bias"][0] == pytest.approx(labels.mean(), abs=1e-3)


@pytest.mark.parametrize(
    ("lists", "priors", "match"),
    [
        ([ADS[:3], ADS[:2]], None, "one length"),
        ([ADS[:3]], None, "2 lists"),
        ([ADS[:1], ADS[1:2]], None, "length >= 2"),
        ([ADS[:3], ADS[3:6]], [np.zeros(3)], "priors must be 2 arrays"),
        ([ADS[:3], ADS[3:6]], [np.zeros(3), np.zeros(2)], r"priors must be \(3,\)"),
    ],
)
def test_bad_lists_are_named(lists, priors, match):
    ctxs = public_contexts(ADS, 2, 1, rng=0)
    with pytest.raises(AgentError, match=match):
        distill_lists(colour_teacher, ctxs, lists, priors, config=CFG)
