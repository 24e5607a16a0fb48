"""A device-sized student distilled from the MiniLM LoRA agent, on MovieLens-100k (issue 16).

Protocol and split of ``benchmarks/agent_quality.py`` (its functions are reused): per seed,
300 evaluated users (100 with ``--quick``), the teacher = MiniLM LoRA r = 8 + head trained
without DP on the other users' clicks, every unseen item a candidate, the exchange's public
prior ``log(1 + training positives)`` on every ad. Students (``agents.distill``, hashed
unigram + bigram bag, ``--buckets`` x ``--dim``):

- ``student (public)``: distilled centrally on pseudo-contexts of public item texts drawn by
  public popularity (no user's data);
- ``student (federated)``: starting from the public student, each training user's device
  distils the global student on its own context (FedAvg of the students, ``--rounds`` x
  ``--per-round`` devices);
- ``student (FedDF)``: the same, and each round the server distils the average towards the
  ensemble (mean logits) of the round's students on ``--ensemble-public`` of the public
  pseudo-contexts for ``--ensemble-epochs`` passes (FedDF, Lin et al. 2020);
- ``student (federated, DP)``: the federated student with user-level DP (each device's update
  clipped to ``--dp-clip``, the server's noise ``--dp-noise`` x that / devices per round); the
  devices' largest and median epsilon at delta 1e-5 are printed and kept in the JSON.

Evaluated users are never used for training or distillation. Per decision (100 random
candidates, the user's context, warm caches: the texts were embedded before), teacher and
students are timed interleaved in this process, one thread; ``cold`` embeds the 100 ad texts
anew (the teacher's transformer forward). FLOPs: teacher warm ``2 * 100 * 384``, cold adds
``2 * (non-embedding parameters) * tokens`` per ad; the student's from ``Student.flops``.

    bash .ci/env python benchmarks/distill.py [--quick] [--seeds 0,1,2]
    bash .ci/env python benchmarks/distill.py --smollm2 5   # SmolLM2's latency alone
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents import enable_lora, load_model, train
from agents.datasets import movielens, positive_counts
from agents.distill import (
    DistillConfig,
    Student,
    distill,
    distill_federated,
    loglik_teacher,
    lora_teacher,
    public_contexts,
)
from agents.scoring import initial_head
from benchmarks._report import machine_note, print_table, write_json
from benchmarks.agent_quality import K, make_context, metrics, split, training_set

CANDIDATES = 100
STUDENTS = ("student (public)", "student (federated)", "student (FedDF)", "student (federated, DP)")


def recall_at_k(scores: np.ndarray, item_ids: np.ndarray, user) -> float:
    """Share of the user's held-out positives (among candidates) in the top K."""
    cand = ~np.isin(item_ids, list(user.seen))
    rel = np.isin(item_ids[cand], list(user.test))
    if not rel.any():
        return 0.0
    top = np.argsort(-np.asarray(scores)[cand], kind="stable")[:K]
    return float(rel[top].sum() / rel.sum())


def quality(score, users, eval_ids, item_ids) -> dict[str, float]:
    """Mean P@K, R@K, NDCG@K of ``score(uid) -> (n_items,)`` over ``eval_ids``."""
    rows = []
    for uid in eval_ids:
        s = score(uid)
        p, n = metrics(s, item_ids, users[uid])
        rows.append((p, recall_at_k(s, item_ids, users[uid]), n))
    return dict(zip(("P@10", "R@10", "NDCG@10"), np.mean(rows, axis=0).tolist(), strict=True))


def timings(scorers: dict, contexts, texts, prior, gen, repeats: int) -> dict[str, np.ndarray]:
    """ms per decision of each scorer, interleaved: ``scorers[name](ctx, texts, prior)``."""
    out: dict[str, list[float]] = {name: [] for name in scorers}
    for r in range(repeats):
        pick = gen.choice(len(texts), CANDIDATES, replace=False)
        ctx, ads, pri = contexts[r % len(contexts)], [texts[i] for i in pick], prior[pick]
        for name, fn in scorers.items():
            start = time.perf_counter()
            fn(ctx, ads, pri)
            out[name].append(1000 * (time.perf_counter() - start))
    return {k: np.array(v) for k, v in out.items()}


def one_seed(seed: int, args, ratings, text) -> tuple:
    """Every model's quality on one split (seed), and the timings on it."""
    rng = np.random.default_rng(seed)
    users, eval_ids, train_ids = split(ratings, rng, args.quick)
    ids = np.concatenate([eval_ids, train_ids])
    item_ids = np.array(sorted(text))
    texts = [text[int(i)] for i in item_ids]
    pop = positive_counts(users, item_ids).astype(float)
    prior = np.log1p(pop).astype(np.float32)
    ctx = {int(u): make_context(users[u], text) for u in ids}

    backbone = load_model("minilm", max_length=32)
    base = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    contexts, ads, labels, priors = training_set(
        backbone, users, train_ids, text, item_ids, prior, 4, rng
    )
    start = time.perf_counter()
    fit = train(
        backbone, base, contexts, ads, labels, priors=priors,
        epochs=1.0 if args.quick else 2.0, batch_size=64, lr=2e-3, max_grad_norm=None, rng=seed,
    )  # fmt: skip
    teacher = lora_teacher(backbone, fit.state)
    print(f"seed {seed}: teacher trained in {time.perf_counter() - start:.0f} s", flush=True)

    cfg = DistillConfig(buckets=args.buckets, dim=args.dim, epochs=args.epochs)
    start = time.perf_counter()
    pseudo = public_contexts(texts, args.public, 20, weights=pop + 1, rng=seed)
    public = distill(teacher, pseudo, texts, prior, config=cfg, rng=seed).student
    t_public = time.perf_counter() - start
    federated = {
        "rounds": args.rounds,
        "per_round": args.per_round,
        "config": DistillConfig(buckets=args.buckets, dim=args.dim, epochs=3, lr=0.005),
        "init": public,
        "rng": seed,
    }
    devices = [ctx[int(u)] for u in train_ids]
    start = time.perf_counter()
    fed = distill_federated(teacher, devices, texts, prior, **federated).student
    t_fed = time.perf_counter() - start
    start = time.perf_counter()
    feddf = distill_federated(
        teacher, devices, texts, prior, **federated,
        public=pseudo[: args.ensemble_public], ensemble_epochs=args.ensemble_epochs,
    ).student  # fmt: skip
    t_feddf = time.perf_counter() - start
    private = distill_federated(
        teacher, devices, texts, prior, **federated,
        clipping_norm=args.dp_clip, noise_multiplier=args.dp_noise,
    )  # fmt: skip
    eps = private.epsilons
    print(
        f"seed {seed}: distilled in {t_public:.0f} s (public), {t_fed:.0f} s (federated), "
        f"{t_feddf:.0f} s (FedDF); DP student: epsilon max {eps.max():.2f}, median "
        f"{np.median(eps):.2f} at delta 1e-5 (clip {args.dp_clip}, noise {args.dp_noise})"
    )
    students = dict(zip(STUDENTS, (public, fed, feddf, private.student), strict=True))
    models = {
        "popularity": lambda c, a, p: p,
        "teacher (MiniLM LoRA)": teacher,
        **{name: s.logits for name, s in students.items()},
    }
    rows = []
    for name, fn in models.items():
        q = quality(lambda u, fn=fn: fn(ctx[int(u)], texts, prior), users, eval_ids, item_ids)
        rows.append({"seed": seed, "model": name, **q})
    rows[-1].update(epsilon_max=float(eps.max()), epsilon_median=float(np.median(eps)))
    evals = [ctx[int(u)] for u in eval_ids]
    gen = np.random.default_rng(seed)
    warm = timings(models, evals, texts, prior, gen, args.repeats)

    def cold_teacher(c, a, p):
        backbone.clear_cache()
        return teacher(c, a, p)

    def cold(student):
        def score(c, a, p):
            student._vectors.clear()  # benchmark only: a device seeing every ad text anew
            return student.logits(c, a, p)

        return score

    cold_ms = timings(
        {"teacher (MiniLM LoRA)": cold_teacher, **{n: cold(s) for n, s in students.items()}},
        evals, texts, prior, gen, args.cold_repeats,
    )  # fmt: skip
    for row in rows:
        ms = warm[row["model"]]
        row["ms_p50"], row["ms_p95"] = float(np.median(ms)), float(np.percentile(ms, 95))
        if row["model"] in cold_ms:
            row["cold_ms_p50"] = float(np.median(cold_ms[row["model"]]))
    return rows, backbone, tuple(students.values()), texts


def sizes(backbone, students, texts) -> dict[str, dict]:
    """Parameters, MB and FLOPs per decision (100 candidates) of each model."""
    core = backbone.core
    params = sum(p.numel() for n, p in core.named_parameters() if "lora" not in n)
    embed = sum(p.numel() for n, p in core.named_parameters() if "embeddings" in n)
    lora = sum(p.numel() for n, p in core.named_parameters() if "lora" in n)
    tokens = float(np.mean([len(backbone.tokenize([t])["input_ids"][0]) for t in texts[:500]]))
    head = backbone.dim + 3
    teacher = {
        "params": params + lora + head,
        "MB": 4 * (params + lora + head) / 1e6,
        "flops_warm": 2 * CANDIDATES * backbone.dim,
        "flops_cold": 2 * CANDIDATES * backbone.dim
        + int(2 * (params - embed) * tokens * CANDIDATES),
    }
    out = {"popularity": {"params": 0, "MB": 0.0, "flops_warm": 0, "flops_cold": 0}}
    out["teacher (MiniLM LoRA)"] = teacher
    for name, s in zip(STUDENTS, students, strict=True):
        out[name] = {
            "params": s.params,
            "MB": s.nbytes / 1e6,
            "flops_warm": s.flops(CANDIDATES),
            "flops_cold": s.flops(CANDIDATES, cached=False),
        }
    return out


def report(rows: list[dict], size: dict[str, dict], args, load_before) -> Path:
    """Print the table over the seeds so far (mean and sd) and write the JSON."""
    table = []
    for name in size:
        mine = [r for r in rows if r["model"] == name]
        row = {"model": name, **size[name]}
        for key in ("ms_p50", "ms_p95", "cold_ms_p50", "P@10", "R@10", "NDCG@10", "epsilon_max"):
            vals = [r[key] for r in mine if key in r]
            if vals:
                row[key] = float(np.mean(vals))
                row[key + "_sd"] = float(np.std(vals))
        table.append(row)
    teacher = next(r for r in table if r["model"].startswith("teacher"))
    for row in table:
        row["kept_ndcg"] = row["NDCG@10"] / teacher["NDCG@10"]
        row["compute_saved_warm"] = 1 - row["flops_warm"] / teacher["flops_warm"]
        row["compute_saved_cold"] = 1 - row["flops_cold"] / teacher["flops_cold"]
    load = os.getloadavg()
    print()
    cols = ["model", "params", "ms_p50", "ms_p95", "cold_ms_p50", "MB", "P@10", "R@10"]
    print_table(
        table, [*cols, "NDCG@10", "NDCG@10_sd", "kept_ndcg", "compute_saved_warm", "epsilon_max"]
    )
    print(machine_note(load_before, load))
    return write_json(
        "distill",
        {
            "args": vars(args),
            "seeds_done": sorted({r["seed"] for r in rows}),
            "candidates_per_decision": CANDIDATES,
            "table": table,
            "per_seed": rows,
            "load_before": load_before,
            "load_after": load,
        },
    )


def smollm2(args, ratings, text) -> None:
    """SmolLM2-135M's log-likelihood scorer: ms per decision (100 candidates, the user's
    context summary) interleaved with a student of the benchmark's size, params and MB. Its
    quality over the catalogue is out of reach on a CPU (seconds per decision)."""
    load_before = os.getloadavg()
    backbone = load_model("smollm2", max_length=32)
    users, eval_ids, _ = split(ratings, np.random.default_rng(0), True)
    texts = [text[int(i)] for i in sorted(text)]
    evals = [make_context(users[u], text) for u in eval_ids]
    student = Student.initial(args.buckets, args.dim, rng=0)  # timing does not depend on weights
    ms = timings(
        {"SmolLM2 (log-likelihood)": loglik_teacher(backbone), "student": student.logits},
        evals, texts, np.zeros(len(texts), np.float32), np.random.default_rng(0), args.smollm2,
    )  # fmt: skip
    params = sum(p.numel() for p in backbone.core.parameters())
    rows = [
        {"model": name, "ms_p50": float(np.median(v)), "ms_p95": float(np.percentile(v, 95))}
        for name, v in ms.items()
    ]
    rows[0].update(params=params, MB=4 * params / 1e6)
    print_table(rows, ["model", "params", "ms_p50", "ms_p95", "MB"])
    load = os.getloadavg()
    print(machine_note(load_before, load))
    payload = {"decisions": args.smollm2, "rows": rows, "load_before": load_before}
    print(f"wrote {write_json('distill_smollm2', {**payload, 'load_after': load})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 users, 120 trainers, 1 epoch")
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in t.split(",")], default=[0, 1, 2])
    parser.add_argument("--buckets", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30, help="public distillation epochs")
    parser.add_argument("--public", type=int, default=2000, help="public pseudo-contexts")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=32)
    parser.add_argument(
        "--ensemble-public", type=int, default=500, help="public contexts of FedDF's server step"
    )
    parser.add_argument("--ensemble-epochs", type=int, default=1, help="FedDF server passes")
    parser.add_argument("--dp-clip", type=float, default=0.1, help="DP student: update L2 clip")
    parser.add_argument("--dp-noise", type=float, default=1.0, help="DP student: noise / clip")
    parser.add_argument("--repeats", type=int, default=300, help="warm timed decisions")
    parser.add_argument("--cold-repeats", type=int, default=10)
    parser.add_argument(
        "--smollm2", type=int, default=0, help="only time SmolLM2 over this many decisions"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    ratings, text = movielens()
    if args.smollm2:
        return smollm2(args, ratings, text)
    rows = []
    for seed in args.seeds:
        seed_rows, backbone, students, texts = one_seed(seed, args, ratings, text)
        rows += seed_rows
        print_table(seed_rows, ["model", "P@10", "R@10", "NDCG@10", "ms_p50", "ms_p95"])
        path = report(rows, sizes(backbone, students, texts), args, load_before)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
