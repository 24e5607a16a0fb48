"""FlowerTune-style federated fine-tuning of a causal LM (``task = "instruct"``): cost and quality.

1. **DP-SGD step on SmolLM2-135M** (``agents.instruct.train_causal``): LoRA r = 8 on q_proj,
   v_proj, 4 instruction examples of one MovieLens user per step (Poisson rate 1), <= 128
   tokens, clip 1, noise 1, two torch threads (the machine); seconds per step (median of
   ``--steps`` after one warm-up step) and the process's peak RSS, with and without gradient
   checkpointing, each setting in a fresh process (so its peak RSS is its own).
2. **Simulation on tiny-causal**: 3 rounds x 2 clients through the project's ServerApp and
   ClientApp (``run_simulation``; the one round core), user-level DP (client-side clipping,
   server noise), cosine learning rate; seconds per round and the PEFT folders written.
3. ``--smollm2``: **2 rounds x 2 clients of SmolLM2** (2 users per client, 4 targets each)
   and, at the same seed and DP setting, the MiniLM agents (``task = "agent"``, the adapter +
   head of ``benchmarks/federated.py``) on the same users; then NDCG@10 / Precision@10 of
   both, zero-shot and federated, and of popularity, on the same candidate sets (each
   evaluation user's held-out positives + 50 unrated movies drawn from the seed,
   ``InstructTask.eval_candidates``): SmolLM2 ranks by the title's mean token log-likelihood
   after the instruction, MiniLM by its agent's predicted CTR (with the exchange's prior).
4. ``--smollm2 --dp-noise Z``: **a user-level DP point**: part 3's federated runs of both
   models once without noise (epsilon inf) and once with the server's Gaussian noise
   multiplier ``Z`` on the clipped mean (``dp = "client-fixed"``, clip 1, as the device task:
   the node clips its whole update, the server noises the mean; the epsilon per user is the
   run's accountant's ``privacy.epsilon_max``, PLD over the rounds a node was aggregated in,
   no sampling amplification claimed); zero-shot rows and part 2 left out.
   ``--smollm2 --zero-shot-only``: part 3's popularity and zero-shot rows alone (the
   reference for a DP point at the same seed and ``--eval-users``).

    bash .ci/env python benchmarks/flowertune.py [--steps 3] [--smollm2] [--eval-users 30]
    bash .ci/env python benchmarks/flowertune.py --skip-steps --smollm2 --dp-noise 1 \\
        --eval-users 20 --seed 0

Prints Markdown tables and writes ``benchmarks/results/flowertune.json`` (date, load averages
before and after, the command).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import machine_note, write_json

SEED = 0


def step_child(checkpointing: bool, steps: int) -> dict[str, Any]:
    """One setting of part 1, in this process: seconds per DP-SGD step and peak RSS."""
    import torch

    from agents import enable_lora, load_model
    from agents.instruct import enable_checkpointing, encode, train_causal
    from federation.instruct_task import InstructTask

    torch.set_num_threads(2)
    task = InstructTask("smollm2", users_per_client=1, positives=4, seed=SEED)
    prompts, responses = task.examples(task.load(0, 400), np.random.default_rng(SEED))
    bb = load_model("smollm2", max_length=128)
    state = enable_lora(bb, rank=8, seed=SEED)
    if checkpointing:
        enable_checkpointing(bb)
    batch = encode(bb.tokenizer, prompts, responses, max_length=128)
    knobs = dict(batch_size=len(batch), max_grad_norm=1.0, noise_multiplier=1.0, lr=2e-3)
    train_causal(bb, state, batch, epochs=1, rng=0, **knobs)  # warm-up
    times, cpu = [], []
    for i in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        train_causal(bb, state, batch, epochs=1, rng=i + 1, **knobs)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)  # less sensitive to the other tenants
    return {
        "checkpointing": checkpointing,
        "examples/step": len(batch),
        "tokens/example": float(batch.attention_mask.sum(1).float().mean()),
        "adapter params": int(sum(v.size for v in state.values())),
        "s/step median": float(np.median(times)),
        "s/step min": float(np.min(times)),
        "CPU s/step median": float(np.median(cpu)),
        "peak RSS GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def step_rows(steps: int) -> list[dict[str, Any]]:
    """Part 1: each setting in a fresh process of this script."""
    rows = []
    for flag in ("on", "off"):
        out = subprocess.run(
            [sys.executable, __file__, "--step-child", flag, "--steps", str(steps)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def simulate(cfg: dict[str, Any], nodes: int, folder: Path) -> tuple[dict, dict, float]:
    """Run ``cfg`` through the ServerApp/ClientApp in the Simulation Engine; (summary, final
    arrays, wall seconds)."""
    from flwr.simulation import run_simulation

    from federation.client_app import app as client_app
    from federation.server_app import load_checkpoint, make_server_app

    out, ckpt = folder / "summary.json", folder / "run"
    start = time.monotonic()
    run_simulation(
        server_app=make_server_app(**cfg, output=str(out), **{"checkpoint-dir": str(ckpt)}),
        client_app=client_app,
        num_supernodes=nodes,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    wall = time.monotonic() - start
    found = load_checkpoint(ckpt)
    if found is None:
        raise RuntimeError(f"the simulation wrote no checkpoint under {ckpt}")
    return json.loads(out.read_text()), found[1], wall


COMMON = {
    "num-nodes": 2,
    "fraction-evaluate": 0.0,
    "local-epochs": 1,
    "batch-size": 4,
    "positives-per-user": 4,
    "seed": SEED,
    "dp": "client-fixed",  # user level: the node clips the update, the server noises the mean
    "clipping-norm": 1.0,
    "noise-multiplier": 0.0,
}


def tiny_rows(folder: Path) -> list[dict[str, Any]]:
    """Part 2: 3 rounds x 2 clients of tiny-causal."""
    cfg = {
        **COMMON,
        "task": "instruct",
        "model": "tiny-causal",
        "lora-rank": 2,
        "max-length": 64,
        "users-per-client": 2,
        "num-server-rounds": 3,
        "agent-lr": 0.05,
        "lr-schedule": "cosine",
        "lr-min": 0.005,
        "noise-multiplier": 0.1,
    }
    summary, _, wall = simulate(cfg, 2, folder)
    saved = sorted(p.name for p in (folder / "run").glob("adapter-round-*"))
    return [
        {
            "round": int(r),
            "lr": summary["train"][r]["lr"],
            "DP-SGD steps": summary["train"][r]["steps"],  # train_loss stays on the node (DP)
            "round s": summary["round_seconds"][int(r) - 1],
            "epsilon (user)": summary["epsilon_per_round"][int(r) - 1],
            "PEFT folder": f"adapter-round-{r}" in saved,
            "wall s": wall,
        }
        for r in sorted(summary["train"], key=int)
    ]


def quality_rows(
    folder: Path,
    eval_users: int,
    seed: int = SEED,
    noises: tuple[float, ...] = (0.0,),
    models: tuple[str, str] = ("smollm2", "minilm"),
) -> list[dict[str, Any]]:
    """Part 3: the causal LM (instruct) vs the encoder agents, same seed, users, DP and
    candidates; one federated run of each per server noise multiplier in ``noises`` (0: no
    noise, epsilon inf). With a single noise of 0 the zero-shot rows come too (the original
    comparison); with a DP point they are left out (they do not depend on the noise); with no
    noise at all (``noises = ()``) only popularity and the zero-shot rows are evaluated."""
    from agents import Agent
    from agents.datasets import precision_ndcg_at_k
    from agents.instruct import movie_title
    from agents.lora import activate, state_version
    from federation.agent_task import movielens_world
    from federation.settings import settings
    from federation.task import make_task

    causal, encoder = models
    smol_cfg = {
        **COMMON,
        "seed": seed,
        "task": "instruct",
        "model": causal,
        "max-length": 128,
        "users-per-client": 2,
        "num-server-rounds": 2,
        "agent-lr": 2e-3,
        "lr-schedule": "cosine",
        "lr-min": 2e-4,
    }
    mini_cfg = {**smol_cfg, "task": "agent", "model": encoder, "agent-lr": 1e-2}
    mini_cfg.update({"max-length": 32, "lr-schedule": "constant", "lr-min": 0.0})
    smol, mini = make_task(settings(smol_cfg)), make_task(settings(mini_cfg))
    world = movielens_world()
    pool = np.array(sorted(u for u, s in world.users.items() if len(s.history) > 4))
    users = np.random.default_rng([seed, 7]).choice(pool, size=eval_users, replace=False)

    def mini_scores(arrays: dict[str, np.ndarray], uid: int, cands: np.ndarray) -> np.ndarray:
        agent = Agent(mini.backbone, mini._context(world.users[uid].history), state=arrays)
        return agent.predict_ctr([world.text[int(m)] for m in cands], world.prior_of(cands))

    def smol_scores(arrays: dict[str, np.ndarray], uid: int, cands: np.ndarray) -> np.ndarray:
        activate(smol.backbone, arrays, state_version(arrays))
        titles = [" " + movie_title(world.text[int(m)]) for m in cands]
        return smol.backbone.loglik(smol._prompt(world.users[uid].history[:, 0]), titles)

    def ranked(score) -> tuple[float, float]:
        rows = []
        for uid in users:
            cands = smol.eval_candidates(int(uid))
            scores = np.asarray(score(int(uid), cands), dtype=float)
            if not np.isfinite(scores).all():  # a noised adapter must not rank by NaN order
                raise RuntimeError(f"non-finite scores for user {uid}")
            rows.append(precision_ndcg_at_k(scores, cands, world.users[uid].test, k=10))
        p, n = np.mean(rows, axis=0)
        return float(n), float(p)

    label = {causal: f"{causal} instruct", encoder: f"{encoder} agent"}
    runs = [("popularity (exchange prior)", lambda u, c: world.prior_of(c), None, 0.0, None)]
    if noises in ((), (0.0,)):
        zero_mini = partial(mini_scores, mini.initial_arrays())
        runs.append((f"{label[encoder]}, zero-shot", zero_mini, None, 0.0, None))
        zero_smol = partial(smol_scores, smol.initial_arrays())
        runs.append((f"{label[causal]}, zero-shot", zero_smol, None, 0.0, None))
    for noise in noises:
        for cfg, name, scores in (
            (mini_cfg, encoder, mini_scores),
            (smol_cfg, causal, smol_scores),
        ):
            cfg = {**cfg, "noise-multiplier": noise}
            summary, final, wall = simulate(cfg, 2, folder / f"{name}-noise{noise:g}")
            runs.append((f"{label[name]}, federated", partial(scores, final), summary, wall, noise))
    rows = []
    for name, score, summary, wall, noise in runs:
        start = time.monotonic()
        ndcg, prec = ranked(score)
        eps = summary["privacy"].get("epsilon_max", float("nan")) if summary else float("nan")
        rows.append(
            {
                "row": name,
                "noise": "-" if noise is None else noise,
                "NDCG@10": ndcg,
                "P@10": prec,
                "epsilon (user)": eps,
                "bytes/client/round": summary["model_bytes"] if summary else 0,
                "sim wall s": wall,
                "eval s": time.monotonic() - start,
            }
        )
        print(markdown(rows[-1:]), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """``rows`` as a Markdown table (columns of the first row)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed DP-SGD steps per setting")
    parser.add_argument("--smollm2", action="store_true", help="part 3 (SmolLM2 vs MiniLM)")
    parser.add_argument("--eval-users", type=int, default=30)
    parser.add_argument("--seed", type=int, default=SEED, help="the run's seed (part 3)")
    parser.add_argument(
        "--dp-noise",
        type=float,
        default=None,
        help="part 3 also at this server noise multiplier (user-level DP point); no zero-shot rows",
    )
    parser.add_argument(
        "--zero-shot-only",
        action="store_true",
        help="part 3 without federated runs: popularity and the zero-shot rows",
    )
    parser.add_argument(
        "--models",
        default="smollm2,minilm",
        help="part 3's causal and encoder models (tiny-causal,tiny-encoder for a smoke run)",
    )
    parser.add_argument("--skip-steps", action="store_true", help="leave out part 1")
    parser.add_argument("--only-steps", action="store_true", help="part 1 alone")
    parser.add_argument("--step-child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_child:
        print(json.dumps(step_child(args.step_child == "on", args.steps)))
        return
    command = "bash .ci/env python benchmarks/flowertune.py " + " ".join(sys.argv[1:])
    load_before = os.getloadavg()
    payload: dict[str, Any] = {"command": command.strip(), "seed": args.seed}
    if not args.skip_steps:
        payload["step"] = step_rows(args.steps)
        print("\nDP-SGD step, SmolLM2-135M, LoRA r=8 q_proj,v_proj, 2 threads\n")
        print(markdown(payload["step"]))
    with tempfile.TemporaryDirectory() as tmp:
        if not (args.only_steps or args.dp_noise is not None or args.zero_shot_only):
            payload["tiny"] = tiny_rows(Path(tmp) / "tiny")
            print("\nSimulation, tiny-causal, 3 rounds x 2 clients (user-level DP, cosine lr)\n")
            print(markdown(payload["tiny"]))
        if args.smollm2 and not args.only_steps:
            noises = (0.0,) if args.dp_noise is None else (0.0, args.dp_noise)
            noises = () if args.zero_shot_only else noises
            causal, encoder = args.models.split(",")
            payload["quality"] = quality_rows(
                Path(tmp), args.eval_users, args.seed, noises, (causal, encoder)
            )
            print(f"\n{causal} vs {encoder}, 2 rounds x 2 clients, {args.eval_users} users\n")
            print(markdown(payload["quality"]))
    load = os.getloadavg()
    print(f"\n{machine_note(load_before, load)}; command: {command.strip()}")
    payload.update(load_before=load_before, load_after=load)
    name = "flowertune-steps" if args.only_steps else f"flowertune-seed{args.seed}"
    if args.dp_noise is not None and not args.only_steps:
        name = f"flowertune-dp{args.dp_noise:g}-seed{args.seed}"
    if args.zero_shot_only and not args.only_steps:
        name = f"flowertune-zeroshot-{args.eval_users}users-seed{args.seed}"
    print(f"wrote {write_json(name, payload)}")


if __name__ == "__main__":
    main()
