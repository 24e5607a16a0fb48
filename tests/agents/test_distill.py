"""Distillation: a hashed bag-of-words student learns a teacher's ranking, deterministically."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from agents import Agent, AgentError, PrivateContext, enable_lora, load_model, ndcg_at_k
from agents.distill import (
    DistillConfig,
    Student,
    average_students,
    distill,
    distill_federated,
    lora_teacher,
    ngram_ids,
    public_contexts,
    teacher_logits,
)
from agents.scoring import initial_head

TOPICS = {
    "shoes": "running trail sneakers socks laces marathon",
    "coffee": "espresso beans roast grinder arabica mug",
    "camping": "tent sleeping bag lantern stove backpack",
    "books": "novel poetry thriller hardcover author paperback",
}
SMALL = DistillConfig(buckets=512, dim=16, epochs=40, batch_size=8, lr=0.05)


def _catalogue() -> tuple[list[str], list[str]]:
    """24 ad texts (6 per topic: three topic words each) and each ad's topic."""
    ads, topic = [], []
    for name, words in TOPICS.items():
        w = words.split()
        for i in range(6):
            ads.append(f"{w[i]} {w[(i + 1) % 6]} {w[(i + 3) % 6]} deal")
            topic.append(name)
    return ads, topic


def _bag(texts: list[str]) -> np.ndarray:
    vocab = sorted({w for t in TOPICS.values() for w in t.split()} | {"deal"})
    out = np.array([[t.split().count(v) for v in vocab] for t in texts], float)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def word_teacher(context: PrivateContext, ads, priors) -> np.ndarray:
    """Closed-form teacher: 6 x cosine of the ad's bag of words to the context's, minus 3."""
    c = _bag([e.text for e in context.events]).sum(0)
    return 6.0 * _bag(list(ads)) @ (c / np.linalg.norm(c)) - 3.0 + 0.0 * priors


def _users(ads, topic, rng, n_per_topic=6):
    """Contexts of 2 same-topic ads each and the topic's other ads as the held-out positives."""
    users = []
    for name in TOPICS:
        idx = [i for i, t in enumerate(topic) if t == name]
        for _ in range(n_per_topic):
            seen = rng.choice(idx, 2, replace=False)
            ctx = PrivateContext()
            for h, j in enumerate(seen):
                ctx.add("view", ads[j], time=3600.0 * h)
            users.append((ctx, set(idx) - set(seen.tolist()), set(seen.tolist())))
    return users


def _ndcg(score, users, n):
    out = []
    for ctx, relevant, seen in users:
        cand = np.array([j for j in range(n) if j not in seen])
        rel = np.isin(cand, list(relevant)).astype(float)
        out.append(ndcg_at_k(np.asarray(score(ctx))[cand], rel, k=5))
    return float(np.mean(out))


def test_the_student_learns_the_teachers_ranking_beyond_popularity():
    ads, topic = _catalogue()
    prior = np.array([2.0 if t == "shoes" else 0.0 for t in topic]) + np.linspace(0, 0.1, 24)
    public = public_contexts(ads, 200, 2, rng=1)  # public texts only, no user
    fit = distill(word_teacher, public, ads, prior, config=SMALL, rng=0)
    users = _users(ads, topic, np.random.default_rng(2))  # held out: never distilled on
    student = _ndcg(lambda c: fit.student.logits(c, ads, prior), users, len(ads))
    teacher = _ndcg(lambda c: word_teacher(c, ads, prior), users, len(ads))
    popularity = _ndcg(lambda c: prior, users, len(ads))
    assert fit.losses[-1] < fit.losses[0]
    assert popularity < 0.35 < 0.8 < teacher  # popularity serves one topic of four
    assert student > popularity + 0.3
    assert student >= 0.9 * teacher


def test_federated_students_learn_on_their_own_contexts():
    ads, topic = _catalogue()
    users = _users(ads, topic, np.random.default_rng(3))
    fit = distill_federated(
        word_teacher, [u[0] for u in users], ads, rounds=15, per_round=8,
        config=DistillConfig(buckets=512, dim=16, epochs=5, lr=0.05), rng=0,
    )  # fmt: skip
    held_out = _users(ads, topic, np.random.default_rng(4))
    score = _ndcg(lambda c: fit.student.logits(c, ads), held_out, len(ads))
    assert fit.losses[-1] < fit.losses[0]
    assert score > 0.7


def test_feddf_server_step_distils_towards_the_students_mean():
    ads, topic = _catalogue()
    users = _users(ads, topic, np.random.default_rng(3))
    public = public_contexts(ads, 40, 3, rng=1)
    cfg = DistillConfig(buckets=512, dim=16, epochs=5, lr=0.05)
    args = (word_teacher, [u[0] for u in users], ads)
    with pytest.raises(AgentError, match="public"):
        distill_federated(*args, ensemble_epochs=2)
    with pytest.raises(AgentError, match="ensemble_epochs"):
        distill_federated(*args, public=public, ensemble_epochs=-1)
    fedavg, feddf = (
        distill_federated(*args, rounds=15, per_round=8, config=cfg, public=public,
                          ensemble_epochs=e, rng=0).student
        for e in (0, 2)
    )  # fmt: skip
    held_out = _users(ads, topic, np.random.default_rng(4))
    scores = [_ndcg(lambda c, s=s: s.logits(c, ads), held_out, len(ads)) for s in (fedavg, feddf)]
    assert not np.array_equal(fedavg.state()["student.table"], feddf.state()["student.table"])
    assert scores[1] > 0.7


def test_ensemble_target_is_the_mean_of_student_logits():
    from agents.distill import _ensemble_logits, _fit, _Problem

    ads, _ = _catalogue()
    public = public_contexts(ads, 5, 3, rng=2)
    students = [Student.initial(buckets=64, dim=4, rng=r) for r in (0, 1, 2)]
    problem = _Problem(public, ads, np.zeros(len(ads), np.float32), np.zeros((0, 0)), 64)
    got = _ensemble_logits(problem, [s.state() for s in students])
    want = np.mean([[s.logits(c, ads) for c in public] for s in students], axis=0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    # the server step: from the average of the states, the loss to the ensemble goes down
    problem.targets = got
    cfg = DistillConfig(buckets=64, dim=4, epochs=1, batch_size=5, lr=0.05)
    avg = average_students([s.state() for s in students])
    every = np.arange(len(public))

    def loss(state):
        return float(problem.loss({k: torch.from_numpy(v) for k, v in state.items()}, every, cfg))

    after, _ = _fit(problem, avg, every, cfg, np.random.default_rng(0), 20)
    assert loss(after) < 0.5 * loss(avg)


def test_distillation_is_deterministic_under_a_seed():
    ads, _ = _catalogue()
    public = public_contexts(ads, 20, 2, rng=0)
    cfg = DistillConfig(buckets=64, dim=4, epochs=3)
    a, b, c = (distill(word_teacher, public, ads, config=cfg, rng=s).student for s in (5, 5, 6))
    for key, value in a.state().items():
        np.testing.assert_array_equal(value, b.state()[key])
    assert not np.array_equal(a.state()["student.table"], c.state()["student.table"])
    assert public_contexts(ads, 3, 2, rng=0)[2].summary() == public[2].summary()


def test_logits_match_a_hand_computation():
    # every row (1, 0): every text vector and the context vector are (1, 0)
    state = {
        "student.table": np.tile(np.array([[1.0, 0.0]], np.float32), (8, 1)),
        "student.scale": np.array([2.0], np.float32),
        "student.prior": np.array([0.5], np.float32),
        "student.bias": np.array([-1.0], np.float32),
    }
    ctx = PrivateContext()
    ctx.add("view", "anything at all", time=0.0)
    s = Student(state)
    np.testing.assert_allclose(s.logits(ctx, ["x", "y z"], np.array([2.0, 0.0])), [2.0, 1.0])
    assert (s.params, s.nbytes) == (19, 76)
    assert s.flops(100) == 100 * 2 * 2


def test_ngram_ids_hash_words_and_bigrams():
    expected = [zlib.crc32(g) % 1000 for g in (b"red", b"dress", b"red dress")]
    assert ngram_ids("Red, DRESS!", 1000).tolist() == expected
    assert ngram_ids("!!!", 1000).tolist() == [0]


def test_the_lora_teacher_is_the_agents_own_score():
    bb = load_model("tiny-encoder")
    state = {**enable_lora(bb, rank=2), **initial_head(bb.dim)}
    state["head.prior"] = np.array([0.3], np.float32)
    ctx = PrivateContext()
    ctx.add("view", "a red dress for summer evenings", time=0.0)
    ads, prior = ["red shoes", "organic coffee beans"], np.array([1.0, 0.0], np.float32)
    t = teacher_logits(lora_teacher(bb, state), [ctx], ads, prior)[0]
    ctr = Agent(bb, ctx, state=state).predict_ctr(ads, prior)
    np.testing.assert_allclose(1 / (1 + np.exp(-t)), ctr, rtol=1e-5)


words = st.text("abcdef ", min_size=1, max_size=12).filter(lambda t: t.strip())


@given(st.lists(words, min_size=2, max_size=8), st.randoms(use_true_random=False))
def test_scores_follow_their_candidates_under_any_order(texts, random):
    s = Student.initial(buckets=64, dim=4, rng=0)
    ctx = PrivateContext()
    ctx.add("search", "abc def", time=0.0)
    prior = np.arange(len(texts), dtype=float)
    order = list(range(len(texts)))
    random.shuffle(order)
    base = s.logits(ctx, texts, prior)
    moved = s.logits(ctx, [texts[i] for i in order], prior[order])
    np.testing.assert_allclose(moved, base[order], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s.embed(texts), axis=1), 1.0, rtol=1e-5)


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=4))
def test_averaging_students_is_the_element_wise_mean(shifts):
    base = Student.initial(buckets=8, dim=2, rng=0).state()
    states = [{k: v + np.float32(s) for k, v in base.items()} for s in shifts]
    mean = average_students(states)
    for key in base:
        np.testing.assert_allclose(mean[key], base[key] + np.mean(shifts), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"buckets": 0}, "buckets"),
        ({"epochs": 1.5}, "epochs"),
        ({"pointwise": -1.0}, "pointwise"),
        ({"lr": float("nan")}, "lr"),
    ],
)
def test_a_bad_config_is_refused(kwargs, match):
    with pytest.raises(AgentError, match=match):
        DistillConfig(**kwargs)


def test_bad_inputs_are_refused_with_the_reason():
    ads, _ = _catalogue()
    ctx = public_contexts(ads, 2, 2, rng=0)
    cases = [
        (lambda: distill(word_teacher, ctx, ads[:1]), "at least 2 candidate ads"),
        (lambda: distill(word_teacher, [], ads), "at least one context"),
        (lambda: distill(word_teacher, ["not a context"], ads), "PrivateContext"),
        (lambda: distill(word_teacher, ctx, ads, np.zeros(3)), r"priors must be \(24,\)"),
        (lambda: distill(lambda c, a, p: np.zeros(3), ctx, ads), r"\(24,\) finite logits"),
        (lambda: distill(lambda c, a, p: np.full(24, np.nan), ctx, ads), "finite logits"),
        (
            lambda: distill(word_teacher, ctx, ads, init=Student.initial(8, 2, rng=0)),
            "8 x 2 student",
        ),
        (lambda: distill_federated(word_teacher, ctx, ads, rounds=0), "rounds"),
        (lambda: public_contexts(ads, 1, 25), "size in"),
        (lambda: public_contexts(ads, 1, 2, weights=-np.ones(24)), "weights"),
        (lambda: Student({"student.table": np.zeros((2, 2))}), "keys"),
        (lambda: Student.initial(buckets=0), "buckets"),
        (lambda: average_students([]), "at least one"),
        (
            lambda: average_students(
                [Student.initial(4, 2, rng=0).state(), Student.initial(8, 2, rng=0).state()]
            ),
            "different sizes",
        ),
    ]
    for call, match in cases:
        with pytest.raises(AgentError, match=match):
            call()
    bad = Student.initial(4, 2, rng=0).state()
    bad["student.bias"] = np.array([np.inf], np.float32)
    with pytest.raises(AgentError, match="NaN or infinite"):
        Student(bad)
