"""Agent speed and memory: choose_ad latency, DP-SGD LoRA step time, adapter bytes, 1,000 agents.

- fast path: ``choose_ad`` over 100 candidates with warm caches (MiniLM), one thread;
- the same warm call vs a numpy floor on the same cached embeddings (a text -> vector dict:
  gather the ads, logits, sigmoid, bid x quality, top two with the reserve, second price),
  interleaved, ratio median/range + load; the auction engine's single call
  (``auction.run_auction``) timed alone beside it. ``choose_ad`` computes the winner's
  explanation only when ``last_explanation`` is read, so neither side computes it here;
  ``explain_ms`` is its cost when read;
- cold path: a new context event before each call (ads cached, the event embedded);
- DP-SGD LoRA step (batch 16 x 64 tokens) and adapter + head bytes, MiniLM and SmolLM2;
- memory: resident memory of N agents (own adapter + head + 30-event context, each having
  scored 100 ads once) above the loaded base model, in all and per extra agent (the slope
  past the first fifth of the agents) against the agent's own bytes;
- shared adapters: N agents loading one global state hold one read-only copy (bytes of the
  distinct states vs N copies, resident memory above the model);
- scorers: ``choose_ad`` over 100 candidates by the log-likelihood scorer on a causal LM vs
  the embedding scorer on an encoder of similar size (tiny-causal vs tiny-encoder; with
  ``--smollm2`` also SmolLM2-135M vs MiniLM-L6), exact and with ``context_tokens = 1`` (an ad's
  first token after the context prompt, the rest after the neutral prompt), and the embedding
  scorer on the causal LM itself: the first call (empty caches: every ad and the context
  through the model), warm calls (nothing changed) and context-changed calls (a new event
  before each), p50/p95 ms, and each loglik row's ratio per path to the encoder's and to the
  same model's embedding agent; and the agent deciding by a distilled student
  (``scorer="student"``, 4,096 x 32, the size ``benchmarks/distill.py --teacher smollm2``
  distils; untrained here: the cost does not depend on the values).

    bash .ci/env python benchmarks/agent_latency.py [--quick] [--smollm2] [--scorers-only]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import auction
from agents import Ad, Agent, enable_lora, load_model, train
from agents.distill import Student
from agents.scoring import initial_head
from benchmarks._report import machine_note, print_table, write_json
from benchmarks.auction_throughput import interleaved

WORDS = [
    "red",
    "blue",
    "summer",
    "dress",
    "shoes",
    "coffee",
    "tent",
    "camping",
    "phone",
    "case",
    "novel",
    "lamp",
    "chair",
]


def phrases(n: int, length: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(rng.choice(WORDS, length)) + f" item {i}" for i in range(n)]


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def warm_agent(rng: np.random.Generator) -> tuple[Agent, list[Ad]]:
    """A MiniLM agent with 30 context events and 100 candidate ads, caches filled."""
    agent = Agent(load_model("minilm"))
    for i, text in enumerate(phrases(30, 4, rng)):
        agent.context.add("view", text, time=float(i))
    ads = [Ad(f"ad{i}", t, float(rng.uniform(0.5, 3))) for i, t in enumerate(phrases(100, 6, rng))]
    agent.choose_ad(ads, reserve=0.4, rng=0)  # fills the caches
    return agent, ads


def latency(repeats: int, rng: np.random.Generator) -> list[dict]:
    agent, ads = warm_agent(rng)
    warm, cold = [], []
    for r in range(repeats):
        start = time.perf_counter()
        agent.choose_ad(ads, reserve=0.4, rng=r)
        warm.append(time.perf_counter() - start)
    for r, text in enumerate(phrases(repeats, 5, rng)):
        agent.context.add("search", f"{text} new {r}", time=100.0 + r)
        start = time.perf_counter()
        agent.choose_ad(ads, reserve=0.4, rng=r)
        cold.append(time.perf_counter() - start)
    return [
        {"path": "fast (warm caches)", **percentiles(warm), "target_p95_ms": 5.0},
        {"path": "cold (context changed)", **percentiles(cold), "target_p95_ms": 30.0},
    ]


def numpy_floor(agent: Agent, ads: list[Ad], reserve: float) -> Callable[[], tuple[int, float]]:
    """The warm choose_ad in plain numpy on the agent's cached embeddings (no validation, no
    random tie-breaking, no explanation: choose_ad computes it when asked): returns (winner
    index, per-click price)."""
    cache = {text: agent.backbone.embed([text])[0] for text in (a.text for a in ads)}
    events = agent.context.scored_events()
    emb = agent.backbone.embed([e.text for e in events])
    weights = agent.context.weights(events)
    v = weights.astype(np.float32) @ emb
    norm = float(np.linalg.norm(v))
    head = agent.state()
    gain, scale, bias = head["head.gain"], head["head.scale"][0], head["head.bias"][0]

    def run() -> tuple[int, float]:
        matrix = np.array([cache[a.text] for a in ads])
        bids = np.array([a.bid for a in ads])
        ctr = 1.0 / (1.0 + np.exp(-(scale * (matrix @ (v / norm * gain)) + bias)))
        score = np.where(bids >= reserve, bids * ctr, -np.inf)
        top = np.argpartition(-score, 1)[:2]
        w, second = (top[0], top[1]) if score[top[0]] >= score[top[1]] else (top[1], top[0])
        price = max(score[second], reserve * ctr[w]) / ctr[w]
        return int(w), float(price)

    return run


def versus_floor(repeats: int, rng: np.random.Generator) -> dict:
    """Warm choose_ad vs :func:`numpy_floor`, interleaved; same winner and price checked."""
    agent, ads = warm_agent(rng)
    floor = numpy_floor(agent, ads, 0.4)
    decision = agent.choose_ad(ads, reserve=0.4, rng=0)
    w, price = floor()
    same = decision.winner == ads[w].ad_id and abs(decision.price - price) < 1e-6 * price
    timing = interleaved(lambda: agent.choose_ad(ads, reserve=0.4, rng=0), floor, repeats)
    bids, quality = np.array([a.bid for a in ads]), np.full(len(ads), 0.05)
    start = time.perf_counter()
    for _ in range(repeats):
        auction.run_auction(bids, reserve=0.4, quality=quality, rng=0)
    auction_s = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for r in range(repeats):
        agent.choose_ad(ads, reserve=0.4, rng=r)
        assert agent.last_explanation is not None
    explain_s = (time.perf_counter() - start) / repeats - timing["t_ours"]
    return {
        "candidates": len(ads),
        "choose_ad_ms": timing["t_ours"] * 1e3,
        "floor_ms": timing["t_peer"] * 1e3,
        "ratio_median": timing["ratio_median"],
        "ratio_min": timing["ratio_min"],
        "ratio_max": timing["ratio_max"],
        "run_auction_ms": auction_s * 1e3,
        "explain_ms": explain_s * 1e3,
        "same_decision": bool(same),
    }


def lora_step(name: str, steps: int, rng: np.random.Generator) -> dict:
    backbone = load_model(name, max_length=64)
    state = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    n = 16 * steps
    texts = phrases(n, 80, rng)  # > 64 tokens: truncated to exactly 64
    contexts = backbone.embed(["summer dress and shoes"]).repeat(n, 0)
    labels = rng.integers(0, 2, n)
    train(backbone, state, contexts[:16], texts[:16], labels[:16], batch_size=16, rng=0)  # warm-up
    start = time.perf_counter()
    fit = train(
        backbone, state, contexts, texts, labels, batch_size=16, noise_multiplier=1.0, rng=0
    )
    return {
        "model": name,
        "step_s": (time.perf_counter() - start) / fit.plan.steps,
        "adapter_head_bytes": int(sum(v.nbytes for v in state.values())),
        "tokens": int(backbone.tokenize(texts[:1])["input_ids"].shape[1]),
    }


def memory(n_agents: int, rng: np.random.Generator) -> dict:
    """Resident memory of ``n_agents`` MiniLM agents, each its own adapter, 30-event context and
    100 ads scored once, above the loaded model: in all, per agent on average, and per EXTRA
    agent (the slope from the first fifth of the agents to all of them: what one more agent
    costs once the model's one-off working memory, from its first forward passes, is paid)
    against its own bytes: adapter + head + its cached embeddings."""
    backbone = load_model("minilm")
    base = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    ads = [Ad(f"ad{i}", t, 1.0) for i, t in enumerate(phrases(100, 6, rng))]
    event_pool = phrases(300, 4, rng)
    gc.collect()
    before = rss_mb()
    agents, first_fifth = [], max(1, n_agents // 5)
    for a in range(n_agents):
        # a personal adapter, as after local training: its own embeddings, its own cache rows
        state = {
            k: v + 0.01 * rng.standard_normal(v.shape).astype(np.float32) for k, v in base.items()
        }
        agent = Agent(backbone, state=state)
        for i, j in enumerate(rng.choice(len(event_pool), 30, replace=False)):
            agent.context.add("view", event_pool[j], time=float(i))
        agent.choose_ad(ads, rng=a)
        agents.append(agent)
        if a + 1 == first_fifth:
            gc.collect()
            at_fifth = rss_mb()
    gc.collect()
    after = rss_mb()
    own_kb = agents[0].nbytes / 1024 + backbone.cached / n_agents * backbone.dim * 4 / 1024
    extra_kb = (after - at_fifth) * 1024 / max(1, n_agents - first_fifth)
    return {
        "agents": n_agents,
        "rss_above_base_mb": after - before,
        "per_agent_kb": (after - before) * 1024 / n_agents,
        "per_extra_agent_kb": extra_kb,
        "adapter_head_kb": agents[0].nbytes / 1024,
        "cached_embeddings": backbone.cached,
        "own_kb": own_kb,
        "extra_over_own": extra_kb / own_kb,
    }


def shared_adapters(n_agents: int) -> dict:
    """N MiniLM agents loading one global adapter + head: bytes held once, not N times."""
    backbone = load_model("minilm")
    base = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    global_state = {k: v + np.float32(0.01) for k, v in base.items()}
    gc.collect()
    before = rss_mb()
    agents = [Agent(backbone, state=global_state) for _ in range(n_agents)]
    gc.collect()
    return {
        "agents": n_agents,
        "state_kb": agents[0].nbytes / 1024,
        "copies_would_mb": n_agents * agents[0].nbytes / 2**20,
        "distinct_states_mb": backbone.states.nbytes / 2**20,
        "rss_above_base_mb": rss_mb() - before,
    }


def scorer_run(
    name: str,
    scorer: str,
    repeats: int,
    rng: np.random.Generator,
    context_tokens: int | None = None,
) -> dict:
    """choose_ad over 100 candidates with ``scorer`` (and the loglik scorer's
    ``context_tokens``) on a fresh ``name`` backbone: the first call, warm calls and
    context-changed calls (ms), and memory."""
    gc.collect()
    before = rss_mb()
    kwargs: dict = {"context_tokens": context_tokens} if scorer == "loglik" else {}
    if scorer == "student":  # the size benchmarks/distill.py distils; its cost not its values
        kwargs["student"] = Student.initial(rng=0)
    agent = Agent(load_model(name), scorer=scorer, **kwargs)
    for i, text in enumerate(phrases(30, 4, rng)):
        agent.context.add("view", text, time=float(i))
    ads = [Ad(f"ad{i}", t, float(rng.uniform(0.5, 3))) for i, t in enumerate(phrases(100, 6, rng))]
    start = time.perf_counter()
    agent.choose_ad(ads, reserve=0.01, rng=0)
    first = time.perf_counter() - start
    warm, cold = [], []
    for r in range(repeats):
        start = time.perf_counter()
        agent.choose_ad(ads, reserve=0.01, rng=r)
        warm.append(time.perf_counter() - start)
    for r, text in enumerate(phrases(max(3, repeats // 20), 5, rng)):
        agent.context.add("search", f"{text} new {r}", time=100.0 + r)
        start = time.perf_counter()
        agent.choose_ad(ads, reserve=0.01, rng=r)
        cold.append(time.perf_counter() - start)
    w, c = percentiles(warm), percentiles(cold)
    return {
        "model": name,
        "scorer": scorer if context_tokens is None else f"{scorer} k={context_tokens}",
        "first_ms": first * 1e3,
        "warm_p50_ms": w["p50_ms"],
        "warm_p95_ms": w["p95_ms"],
        "changed_p50_ms": c["p50_ms"],
        "changed_p95_ms": c["p95_ms"],
        "rss_mb": rss_mb() - before,
        "adapter_head_kb": agent.nbytes / 1024,
    }


def scorers(pairs: list[tuple[str, str]], repeats: int, rng: np.random.Generator) -> list[dict]:
    """For each (encoder, causal LM) pair: the embedding agent on the encoder, the loglik agent
    (exact, and ``context_tokens = 1``), the student agent and the embedding agent on the
    causal LM itself (the same model as an encoder), with each loglik / student row's ratio
    per path to the encoder's and to the same model's embedding agent (the target is <= 2)."""
    rows = []
    for encoder, causal in pairs:
        emb = scorer_run(encoder, "embedding", repeats, rng)
        same = scorer_run(causal, "embedding", repeats, rng)
        rows += [emb, same]
        for k in (None, 1, "student"):
            if k == "student":
                ll = scorer_run(causal, "student", repeats, rng)
            else:
                ll = scorer_run(causal, "loglik", repeats, rng, context_tokens=k)
            rows.append(ll)
            for base in (emb, same):
                ratio = {key: ll[key] / base[key] for key in base if key.endswith("_ms")}
                label = f"{causal} {ll['scorer']} / {base['model']} embedding"
                label = label.replace(f"{causal} student", "student")
                rows.append({"model": label, "scorer": "ratio", **ratio})
    return rows


SCORER_COLUMNS = [
    "model",
    "scorer",
    "first_ms",
    "warm_p50_ms",
    "warm_p95_ms",
    "changed_p50_ms",
    "changed_p95_ms",
    "rss_mb",
    "adapter_head_kb",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, agents and steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floor-only", action="store_true", help="only choose_ad vs the floor")
    parser.add_argument(
        "--smollm2", action="store_true", help="add SmolLM2 (loglik) vs MiniLM scorer rows"
    )
    parser.add_argument("--scorers-only", action="store_true", help="only the scorer rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    pairs = [("tiny-encoder", "tiny-causal")] + ([("minilm", "smollm2")] if args.smollm2 else [])
    score_rows = scorers(pairs, 50 if args.quick else 200, rng)
    print_table(score_rows, SCORER_COLUMNS)
    print(f"{machine_note(load_before, os.getloadavg())}; one thread; 100 candidates")
    if args.scorers_only:
        write_json(
            "agent_latency_scorers",
            {"seed": args.seed, "threads": 1, "smollm2": args.smollm2, "scorers": score_rows},
        )
        return
    floor = versus_floor(200 if args.quick else 1000, rng)
    print_table([floor], list(floor))
    print(f"{machine_note(load_before, os.getloadavg())}; one thread; ratio = choose_ad / floor")
    if args.floor_only:
        write_json("agent_latency_floor", {"seed": args.seed, "threads": 1, "floor": floor})
        return

    # Memory first: freed pages of the other parts would be reused and hide the agents' RSS.
    mem = memory(100 if args.quick else 1000, rng)
    shared = shared_adapters(100 if args.quick else 1000)
    print_table([shared], list(shared))
    lat = latency(50 if args.quick else 300, rng)
    print_table(lat, ["path", "p50_ms", "p95_ms", "target_p95_ms"])
    steps = [lora_step(m, 2 if args.quick else 5, rng) for m in ("minilm", "smollm2")]
    print_table(steps, ["model", "step_s", "adapter_head_bytes", "tokens"])
    print_table([mem], list(mem))
    write_json(
        "agent_latency",
        {
            "quick": args.quick,
            "seed": args.seed,
            "threads": 1,
            "floor": floor,
            "latency": lat,
            "lora": steps,
            "memory": mem,
            "shared_adapters": shared,
            "scorers": score_rows,
        },
    )


if __name__ == "__main__":
    main()
