"""Agent speed and memory: choose_ad latency, DP-SGD LoRA step time, adapter bytes, 1,000 agents.

- fast path: ``choose_ad`` over 100 candidates with warm caches (MiniLM), one thread;
- cold path: a new context event before each call (ads cached, the event embedded);
- DP-SGD LoRA step (batch 16 x 64 tokens) and adapter + head bytes, MiniLM and SmolLM2;
- memory: resident memory of N agents (own adapter + head + 30-event context, each having
  scored 100 ads once) above the loaded base model.

    bash .ci/env python benchmarks/agent_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents import Ad, Agent, enable_lora, load_model, train
from agents.scoring import initial_head
from benchmarks._report import print_table, write_json

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


def latency(repeats: int, rng: np.random.Generator) -> list[dict]:
    backbone = load_model("minilm")
    agent = Agent(backbone)
    for i, text in enumerate(phrases(30, 4, rng)):
        agent.context.add("view", text, time=float(i))
    ads = [Ad(f"ad{i}", t, float(rng.uniform(0.5, 3))) for i, t in enumerate(phrases(100, 6, rng))]
    agent.choose_ad(ads, reserve=0.4, rng=0)  # fills the caches
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
    backbone = load_model("minilm")
    base = {**enable_lora(backbone, rank=8), **initial_head(backbone.dim)}
    ads = [Ad(f"ad{i}", t, 1.0) for i, t in enumerate(phrases(100, 6, rng))]
    event_pool = phrases(300, 4, rng)
    gc.collect()
    before = rss_mb()
    agents = []
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
    gc.collect()
    after = rss_mb()
    return {
        "agents": n_agents,
        "rss_above_base_mb": after - before,
        "per_agent_kb": (after - before) * 1024 / n_agents,
        "adapter_head_kb": agents[0].nbytes / 1024,
        "cached_embeddings": backbone.cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, agents and steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)

    # Memory first: freed pages of the other parts would be reused and hide the agents' RSS.
    mem = memory(100 if args.quick else 1000, rng)
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
            "latency": lat,
            "lora": steps,
            "memory": mem,
        },
    )


if __name__ == "__main__":
    main()
