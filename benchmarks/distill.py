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

With ``--teacher smollm2`` (issue 19's fast path), the teacher is SmolLM2-135M's exact
log-likelihood scorer (``agents.distill.loglik_teacher``: each ad's mean token log-probability
after the agent's scoring prompt, ``Agent(scorer="loglik")``'s relevance at ``w = 0``). The
student is distilled without any user's data: ``--pseudo`` public pseudo-contexts of
``--pseudo-size`` MovieLens titles (drawn by public popularity), each labelled by the teacher
on its own ``--list`` titles drawn uniformly (``distill_lists``, listwise, ``pointwise = 0``:
the teacher's values are log-probabilities, not CTR logits). Evaluated on the protocol of
``agent_quality.py --baseline-sweep`` (the report pool, even user ids; per seed
``--eval-users`` users and their 100 sampled candidates): popularity, the MiniLM embedding
agent, the teacher and the student, with the student's NDCG kept vs the teacher and its
agreement with the teacher (Spearman, top-10 overlap). Latency per decision after a context
change (a new ``view`` event before every decision, 100 candidates, one thread, interleaved):
teacher, MiniLM (warm ad cache) and student, over ``--latency-repeats`` decisions.

    bash .ci/env python benchmarks/distill.py [--quick] [--seeds 0,1,2]
    bash .ci/env python benchmarks/distill.py --smollm2 5   # SmolLM2's latency alone
    bash .ci/env python benchmarks/distill.py --teacher smollm2   # SmolLM2's student
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
from agents import Agent, enable_lora, load_model, train
from agents.datasets import movielens, movielens_users, positive_counts, precision_ndcg_at_k
from agents.distill import (
    DistillConfig,
    Student,
    distill,
    distill_federated,
    distill_lists,
    loglik_teacher,
    lora_teacher,
    public_contexts,
)
from agents.scoring import initial_head
from benchmarks._report import machine_note, print_table, write_json
from benchmarks.agent_quality import (
    HISTORY,
    K,
    make_context,
    metrics,
    pool_users,
    split,
    training_set,
)

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


SMOL_RANKERS = (
    "popularity",
    "MiniLM (embedding)",
    "SmolLM2 loglik (teacher)",
    "student",
    "student, prior term off",
)
TEACHER = SMOL_RANKERS[2]


class Labeller:
    """The teacher, memoised in memory per (context object, candidate list) so that several
    students can be fitted on one labelling; a progress line every ``every`` new calls."""

    def __init__(self, teacher, total: int, every: int = 10) -> None:
        self.teacher, self.total, self.every = teacher, total, every
        self.memo: dict[tuple, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, ctx, ads, priors) -> np.ndarray:
        key = (id(ctx), tuple(ads))
        if key not in self.memo:
            start = time.perf_counter()
            self.memo[key] = np.asarray(self.teacher(ctx, ads, priors), np.float32)
            self.seconds += time.perf_counter() - start
            done = len(self.memo)
            if done % self.every == 0 or done == self.total:
                eta = self.seconds / done * (self.total - done)
                print(f"  labelled {done}/{self.total} in {self.seconds:.0f} s (eta {eta:.0f} s)")
        return self.memo[key]


def smol_student(args, texts: list[str], pop: np.ndarray, prior: np.ndarray, teacher):
    """The public student: ``args.pseudo`` pseudo-contexts, each with its own ``args.list``
    uniformly drawn titles labelled by ``teacher`` (seeded by the first seed). The temperature
    is chosen among ``args.temperatures`` by the Spearman agreement with the teacher on the
    last fifth of the pseudo-contexts (fitted on the rest), then the student is fitted on all.
    Returns the student and the labelling / fitting facts."""
    seed = args.seeds[0]
    gen = np.random.default_rng(seed)
    pseudo = public_contexts(texts, args.pseudo, args.pseudo_size, weights=pop + 1, rng=seed)
    picks = [gen.choice(len(texts), args.list, replace=False) for _ in pseudo]
    lists, pri = [[texts[i] for i in p] for p in picks], [prior[p] for p in picks]
    labeller = Labeller(teacher, len(pseudo))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.label_threads)  # labelling only: the timed decisions use one
    labels = [labeller(c, a, p) for c, a, p in zip(pseudo, lists, pri, strict=True)]
    torch.set_num_threads(threads)
    start, cut, grid = time.perf_counter(), len(pseudo) - max(1, len(pseudo) // 5), {}
    for tau in args.temperatures:
        cfg = DistillConfig(args.buckets, args.dim, tau, 0.0, args.epochs)
        held = distill_lists(labeller, pseudo[:cut], lists[:cut], pri[:cut], config=cfg, rng=seed)
        rho = [
            agreement(held.student.logits(c, a, p), t)[0]
            for c, a, p, t in zip(pseudo[cut:], lists[cut:], pri[cut:], labels[cut:], strict=True)
        ]
        grid[tau] = float(np.mean(rho))
    tau = max(grid, key=grid.get)
    cfg = DistillConfig(args.buckets, args.dim, tau, 0.0, args.epochs)
    res = distill_lists(labeller, pseudo, lists, pri, config=cfg, rng=seed)
    fit_s = time.perf_counter() - start
    print(f"student: labelled in {labeller.seconds:.0f} s, fitted in {fit_s:.0f} s; held-out "
          f"Spearman vs teacher by temperature {grid}, chose {tau}")  # fmt: skip
    facts = {"label_s": labeller.seconds, "fit_s": fit_s, "loss": res.losses[-1]}
    facts["head"] = {k: float(v[0]) for k, v in res.student.state().items() if v.size == 1}
    return res.student, {**facts, "temperature": tau, "heldout_spearman_by_temperature": grid}


def agreement(student: np.ndarray, teacher: np.ndarray) -> tuple[float, float]:
    """(Spearman rank correlation, top-K overlap share) of two score lists (n,)."""
    rs, rt = np.argsort(np.argsort(student)), np.argsort(np.argsort(teacher))
    rho = float(np.corrcoef(rs, rt)[0, 1])
    top = len(set(np.argsort(-student)[:K]) & set(np.argsort(-teacher)[:K])) / K
    return rho, top


def smol_quality(rankers: dict, users, picked, text, prior_of) -> tuple[list[dict], dict]:
    """NDCG@10 / P@10 of every ranker on ``picked`` and each one's agreement with the
    teacher; one torch thread."""
    per: dict[str, list] = {name: [] for name in rankers}
    agree: dict[str, list] = {name: [] for name in rankers if name != TEACHER}
    for uid, ids in picked:
        ctx, texts = make_context(users[uid], text), [text[int(i)] for i in ids]
        priors = np.array([prior_of[i] for i in ids], np.float32)
        scores = {name: np.asarray(fn(ctx, texts, priors)) for name, fn in rankers.items()}
        for name, s in scores.items():
            per[name].append(precision_ndcg_at_k(s, ids, users[uid].test, k=K))
        for name in agree:
            agree[name].append(agreement(scores[name], scores[TEACHER]))
    rows = []
    for name, vals in per.items():
        p, n = np.mean(vals, axis=0)
        rows.append({"ranker": name, "P@10": float(p), "NDCG@10": float(n)})
        rows[-1]["NDCG@10 per user"] = [float(v[1]) for v in vals]
        if name in agree:
            rho, top = np.mean(agree[name], axis=0)
            rows[-1].update(spearman_vs_teacher=float(rho), top10_overlap_vs_teacher=float(top))
    return rows


def smol_latency(scorers: dict, users, picked, text, prior_of, repeats: int, seed: int):
    """ms per decision of each ``scorers[name](ctx, texts, priors)`` after a context change:
    before every decision a new ``view`` of a random title, an hour after the newest event,
    joins the user's context (persistent per user); 100 candidates; interleaved."""
    gen = np.random.default_rng(seed)
    titles = list(text.values())
    contexts = {uid: make_context(users[uid], text) for uid, _ in picked}
    out: dict[str, list[float]] = {name: [] for name in scorers}
    for r in range(repeats):
        uid, ids = picked[r % len(picked)]
        ctx = contexts[uid]
        newest = max(e.time for e in ctx.events)
        ctx.add("view", titles[int(gen.integers(len(titles)))], time=newest + 3600.0)
        texts = [text[int(i)] for i in ids]
        priors = np.array([prior_of[i] for i in ids], np.float32)
        for name, fn in scorers.items():
            start = time.perf_counter()
            fn(ctx, texts, priors)
            out[name].append(1000 * (time.perf_counter() - start))
    return {k: np.array(v) for k, v in out.items()}


def smol_run(args, ratings, text) -> None:
    """``--teacher smollm2``: distil, evaluate, time, print the tables, write the JSON."""
    load_before, started = os.getloadavg(), time.perf_counter()
    command = " ".join(["bash .ci/env python benchmarks/distill.py", *sys.argv[1:]])
    users = movielens_users(ratings, history=HISTORY)
    item_ids = np.array(sorted(text))
    texts = [text[int(i)] for i in item_ids]
    pop = positive_counts(users, item_ids).astype(float)
    prior = np.log1p(pop).astype(np.float32)
    prior_of = dict(zip(item_ids.tolist(), prior.tolist(), strict=True))
    smol, minilm = load_model("smollm2", max_length=32), load_model("minilm", max_length=32)
    teacher = loglik_teacher(smol)
    student, fit = smol_student(args, texts, pop, prior, teacher)
    agents: dict[int, tuple] = {}  # one MiniLM agent per context (held: ids stay unique)

    def minilm_score(ctx, ads, priors):
        if id(ctx) not in agents:
            agents[id(ctx)] = (ctx, Agent(minilm, ctx))
        return agents[id(ctx)][1].predict_ctr(ads, priors)

    rankers = {
        "popularity": lambda c, a, p: p,
        "MiniLM (embedding)": minilm_score,
        TEACHER: teacher,
        "student": student.logits,  # its CTR's order; the logits never saturate to ties
    }
    ablation = {"student, prior term off": lambda c, a, p: student.logits(c, a, 0.0)}
    rows, first = [], None
    for seed in args.seeds:
        picked = pool_users(users, item_ids, "report", seed, args.eval_users, CANDIDATES)
        first = first or picked
        q = smol_quality({**rankers, **ablation}, users, picked, text, prior_of)
        rows += [{"seed": seed, **r} for r in q]
        print_table(rows[-len(q) :], ["seed", "ranker", "P@10", "NDCG@10", "spearman_vs_teacher"])
    ms = smol_latency(rankers, users, first, text, prior_of, args.latency_repeats, args.seeds[0])
    smol_report(rows, ms, fit, args, command, load_before, time.perf_counter() - started)


def smol_report(rows, ms, fit, args, command, load_before, seconds) -> None:
    """Mean quality over seeds, latency percentiles and ratios; the tables and the JSON."""
    table = []
    for name in SMOL_RANKERS:
        mine = [r for r in rows if r["ranker"] == name]
        row = {"ranker": name}
        for key in ("P@10", "NDCG@10", "spearman_vs_teacher", "top10_overlap_vs_teacher"):
            if key in mine[0]:
                row[key] = float(np.mean([r[key] for r in mine]))
        row["NDCG@10 per seed"] = [r["NDCG@10"] for r in mine]
        table.append(row)
    teacher = table[SMOL_RANKERS.index(TEACHER)]["NDCG@10"]
    for row in table:
        row["kept_vs_teacher"] = row["NDCG@10"] / teacher
    timed = [
        {"scorer": name, "ms_p50": float(np.median(v)), "ms_p95": float(np.percentile(v, 95))}
        for name, v in ms.items()
        if name != "popularity"
    ]
    base = next(t for t in timed if t["scorer"].startswith("MiniLM"))
    for t in timed:
        t["p50_vs_minilm"] = t["ms_p50"] / base["ms_p50"]
    load = os.getloadavg()
    print()
    cols = ["ranker", "P@10", "NDCG@10", "kept_vs_teacher", "spearman_vs_teacher"]
    print_table(table, [*cols, "top10_overlap_vs_teacher"])
    print()
    print_table(timed, ["scorer", "ms_p50", "ms_p95", "p50_vs_minilm"])
    print(f"{machine_note(load_before, load)}; {seconds:.0f} s; command: {command}")
    payload = {
        "command": command,
        "args": vars(args),
        "teacher": "SmolLM2-135M loglik, exact (w = 0, context_tokens None), max_length 32",
        "eval": {"pool": "report", "users_per_seed": args.eval_users, "k": K},
        "candidates_per_decision": CANDIDATES,
        "distillation": fit,
        "quality": table,
        "per_seed": rows,
        "latency": timed,
        "latency_repeats": args.latency_repeats,
        "load_before": load_before,
        "load_after": load,
        "seconds": seconds,
    }
    print(f"wrote {write_json('distill_smollm2_student', payload)}")


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
    parser.add_argument(
        "--teacher",
        choices=("minilm", "smollm2"),
        default="minilm",
        help="smollm2: distil SmolLM2's loglik scorer on public pseudo-contexts (docstring)",
    )
    parser.add_argument("--pseudo", type=int, default=160, help="smollm2: pseudo-contexts")
    parser.add_argument("--pseudo-size", type=int, default=10, help="smollm2: titles each")
    parser.add_argument("--list", type=int, default=24, help="smollm2: candidates per context")
    parser.add_argument(
        "--temperatures",
        type=lambda t: [float(x) for x in t.split(",")],
        default=[0.5, 1.0, 2.0],
        help="smollm2: distillation temperatures tried (held-out pseudo-contexts choose)",
    )
    parser.add_argument("--label-threads", type=int, default=1, help="smollm2: labelling")
    parser.add_argument("--eval-users", type=int, default=20, help="smollm2: users per seed")
    parser.add_argument("--latency-repeats", type=int, default=20, help="smollm2: decisions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    ratings, text = movielens()
    if args.smollm2:
        return smollm2(args, ratings, text)
    if args.teacher == "smollm2":
        return smol_run(args, ratings, text)
    rows = []
    for seed in args.seeds:
        seed_rows, backbone, students, texts = one_seed(seed, args, ratings, text)
        rows += seed_rows
        print_table(seed_rows, ["model", "P@10", "R@10", "NDCG@10", "ms_p50", "ms_p95"])
        path = report(rows, sizes(backbone, students, texts), args, load_before)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
