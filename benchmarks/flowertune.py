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
   ``--nodes M --users-per-client U --lora-rank R --lora-targets L --smol-lr A --smol-lr-min B
   --clip C --rounds N``: the same point at another cohort and adapter (class ``Cohort``; the
   defaults are the runs above). Each federated row records ``d`` (trained parameters), ``m``,
   ``z``, ``C``, ``z sqrt(d) / m`` (the expected noise norm on the mean, in units of ``C``) and
   the measured norms of round 1's clipped mean update and of the server's noise.

    bash .ci/env python benchmarks/flowertune.py [--steps 3] [--smollm2] [--eval-users 30]
    bash .ci/env python benchmarks/flowertune.py --skip-steps --smollm2 --dp-noise 1 \\
        --eval-users 20 --seed 0
    bash .ci/env python benchmarks/flowertune.py --skip-steps --smollm2 --dp-noise 1 \
        --eval-users 20 --seed 0 --nodes 128 --users-per-client 1 --lora-rank 1 \
        --lora-targets layers.29.self_attn.v_proj --smol-lr 0.05 --smol-lr-min 0.05

Prints Markdown tables and writes ``benchmarks/results/flowertune*.json`` (date, load averages
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Cohort:
    """The federation's shape in parts 3 and 4 (the defaults are the original 2 x 2 x 2 runs).

    The server's noise on the mean of ``nodes`` clipped updates has norm about
    ``z * clip * sqrt(d) / nodes`` for ``d`` trained parameters, against a mean of norm at most
    ``clip``: a DP point carries signal only when ``z * sqrt(d) / nodes`` is small, so the
    cohort (``nodes``) and the adapter (``rank``, ``targets``: SmolLM2's LoRA layers; the MiniLM
    agents keep their task's own targets, only the rank applies) are the knobs.
    """

    nodes: int = 2  # clients per round (every node trains every round)
    rounds: int = 2
    users_per_client: int = 2
    rank: int = 8
    targets: str = "q_proj,v_proj"
    clip: float = 1.0  # the node's clip of its whole update (L2)
    # SmolLM2's rate, cosine from lr to lr_min over the rounds; its first local step moves
    # every trained B entry by about lr (Adam), so |update| ~ lr sqrt(d / 2): match it to clip
    lr: float = 2e-3
    lr_min: float = 2e-4

    def __post_init__(self) -> None:
        """Refuse a cohort the runs cannot take, naming the field and what is allowed.

        >>> Cohort(nodes=0)
        Traceback (most recent call last):
        ...
        ValueError: --nodes = 0; allowed: an integer >= 1
        """
        checks = {
            "--nodes": (self.nodes, "an integer >= 1", self.nodes >= 1),
            "--rounds": (self.rounds, "an integer >= 1", self.rounds >= 1),
            "--users-per-client": (
                self.users_per_client,
                ">= 0 (0: all)",
                self.users_per_client >= 0,
            ),
            "--lora-rank": (self.rank, "an integer >= 1", self.rank >= 1),
            "--clip": (self.clip, "a finite number > 0", np.isfinite(self.clip) and self.clip > 0),
            "--smol-lr": (self.lr, "a finite number > 0", np.isfinite(self.lr) and self.lr > 0),
            "--smol-lr-min": (self.lr_min, "in 0..--smol-lr", 0 <= self.lr_min <= self.lr),
        }
        for flag, (value, allowed, ok) in checks.items():
            if not ok:
                raise ValueError(f"{flag} = {value!r}; allowed: {allowed}")

    def config(self) -> dict[str, Any]:
        """The run-config keys this cohort sets (both models; targets reach the instruct task)."""
        return {
            "num-nodes": self.nodes,
            "num-server-rounds": self.rounds,
            "users-per-client": self.users_per_client,
            "lora-rank": self.rank,
            "clipping-norm": self.clip,
        }


def round_one(folder: Path) -> dict[str, np.ndarray]:
    """The global arrays a run in ``folder`` (``simulate``) checkpointed after round 1."""
    with np.load(folder / "run" / "round-00001.npz") as data:
        return {k: data[k] for k in data.files}


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """L2 norm of ``a - b`` over all arrays (same keys and shapes), in float64."""
    if a.keys() != b.keys():
        raise ValueError(f"array names differ: {sorted(a.keys() ^ b.keys())}")
    return float(
        np.sqrt(sum(np.sum((a[k].astype(np.float64) - b[k].astype(np.float64)) ** 2) for k in a))
    )


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
    cohort: Cohort = Cohort(),
) -> list[dict[str, Any]]:
    """Part 3: the causal LM (instruct) vs the encoder agents, same seed, users, DP and
    candidates; one federated run of each per server noise multiplier in ``noises`` (0: no
    noise, epsilon inf). With a single noise of 0 the zero-shot rows come too (the original
    comparison); with a DP point they are left out (they do not depend on the noise); with no
    noise at all (``noises = ()``) only popularity and the zero-shot rows are evaluated.

    Each federated row also records the trained parameter count ``d`` (every array that is
    sent and noised), ``m`` clients per round, ``z``, ``C`` and ``z sqrt(d) / m`` (the expected
    noise norm on the mean over ``C``), and, measured after round 1 from the checkpoints: the
    norm of the clipped mean update (noise-0 run minus the initial arrays) and of the server's
    noise (noise-z run minus the noise-0 run; both rounds 1 start from the same arrays and train
    the same users deterministically, so the difference is the noise alone), and their ratio
    (``signal/noise r1``). The noise-0 run comes first in ``noises`` for that."""
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
        **cohort.config(),
        "seed": seed,
        "task": "instruct",
        "model": causal,
        "lora-targets": cohort.targets,
        "max-length": 128,
        "agent-lr": cohort.lr,
        "lr-schedule": "cosine",
        "lr-min": cohort.lr_min,
    }
    mini_cfg = {**smol_cfg, "task": "agent", "model": encoder, "agent-lr": 1e-2}
    mini_cfg.update({"max-length": 32, "lr-schedule": "constant", "lr-min": 0.0})
    mini_cfg["lora-targets"] = Cohort.targets  # the agent task keeps its own targets
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
    shape: dict[str, dict[str, Any]] = {}  # per federated row: d, m, z, C, measured norms
    reference: dict[str, tuple[str, dict]] = {}  # per model: the noise-0 row and its round 1
    for noise in noises:
        for cfg, name, scores, task in (
            (mini_cfg, encoder, mini_scores, mini),
            (smol_cfg, causal, smol_scores, smol),
        ):
            cfg = {**cfg, "noise-multiplier": noise}
            run_dir = folder / f"{name}-noise{noise:g}"
            summary, final, wall = simulate(cfg, cohort.nodes, run_dir)
            row = f"{label[name]}, federated" + ("" if noise == 0 else f", z = {noise:g}")
            runs.append((row, partial(scores, final), summary, wall, noise))
            first = round_one(run_dir)
            shape[row] = dp_shape(task.initial_arrays(), first, noise, cohort)
            if noise == 0:
                reference[name] = (row, first)
            elif name in reference:
                ref_row, ref_arrays = reference[name]
                noise_norm = distance(first, ref_arrays)
                shape[row]["|noise| r1"] = noise_norm
                shape[row]["signal/noise r1"] = shape[ref_row]["|r1 - r0|"] / noise_norm
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
                **shape.get(name, {}),
                "bytes/client/round": summary["model_bytes"] if summary else 0,
                "sim wall s": wall,
                "eval s": time.monotonic() - start,
            }
        )
        print(markdown(rows[-1:]), flush=True)
    return rows


def dp_shape(
    initial: dict[str, np.ndarray], first: dict[str, np.ndarray], noise: float, cohort: Cohort
) -> dict[str, Any]:
    """A federated row's DP arithmetic: ``d`` (trained parameters), ``m``, ``z``, ``C``,
    ``z sqrt(d) / m`` (expected noise norm on the mean, in units of ``C``), and the measured
    norm of round 1's global change ``|r1 - r0|`` (the clipped mean update, plus the noise when
    ``z > 0``); ``|noise| r1`` is filled in by the caller when a noise-0 reference exists.

    >>> a = {"w": np.zeros(4, np.float32)}
    >>> dp_shape(a, {"w": np.ones(4, np.float32)}, 1.0, Cohort(nodes=4))["z sqrt(d)/m"]
    0.5
    """
    d = int(sum(v.size for v in initial.values()))
    m = cohort.nodes
    return {
        "d": d,
        "m": m,
        "z": noise,
        "C": cohort.clip,
        "z sqrt(d)/m": noise * float(np.sqrt(d)) / m,
        "|r1 - r0|": distance(first, initial),
        "|noise| r1": float("nan") if noise else 0.0,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """``rows`` as a Markdown table (every row's columns, in order of first appearance)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def noise_list(text: str) -> tuple[float, ...]:
    """``--dp-noise``: one or more noise multipliers > 0, comma-separated.

    >>> noise_list("1,0.5")
    (1.0, 0.5)
    """
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(np.isfinite(z) and z > 0 for z in values):
        raise argparse.ArgumentTypeError(
            f"--dp-noise = {text!r}; allowed: noise multipliers > 0, comma-separated (e.g. 1,0.5)"
        )
    return values


def tag(cohort: Cohort) -> str:
    """The result-file suffix of a non-default cohort ('' for the original 2 x 2 x 2 runs).

    >>> tag(Cohort(nodes=16, users_per_client=1, rank=1, targets="layers.29.self_attn.v_proj"))
    '-m16-u1-r1-layers_29_self_attn_v_proj'
    """
    if cohort == Cohort():
        return ""
    text = f"-m{cohort.nodes}-u{cohort.users_per_client}-r{cohort.rank}"
    text += "" if cohort.rounds == Cohort.rounds else f"-R{cohort.rounds}"
    text += "" if cohort.clip == Cohort.clip else f"-C{cohort.clip:g}"
    if (cohort.lr, cohort.lr_min) != (Cohort.lr, Cohort.lr_min):
        text += f"-lr{cohort.lr:g}-{cohort.lr_min:g}"
    if cohort.targets != Cohort.targets:
        text += "-" + cohort.targets.replace(",", "+").replace(".", "_")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed DP-SGD steps per setting")
    parser.add_argument("--smollm2", action="store_true", help="part 3 (SmolLM2 vs MiniLM)")
    parser.add_argument("--eval-users", type=int, default=30)
    parser.add_argument("--seed", type=int, default=SEED, help="the run's seed (part 3)")
    parser.add_argument(
        "--dp-noise",
        type=noise_list,
        default=None,
        help="part 3 also at these server noise multipliers, comma-separated (user-level DP "
        "point); no zero-shot rows",
    )
    cohort = parser.add_argument_group("cohort and adapter of parts 3/4 (defaults: the 2 x 2 runs)")
    cohort.add_argument("--nodes", type=int, default=Cohort.nodes, help="clients per round M")
    cohort.add_argument("--rounds", type=int, default=Cohort.rounds)
    cohort.add_argument("--users-per-client", type=int, default=Cohort.users_per_client)
    cohort.add_argument("--lora-rank", type=int, default=Cohort.rank, help="both models")
    cohort.add_argument(
        "--lora-targets", default=Cohort.targets, help="SmolLM2's LoRA layers, comma-separated"
    )
    cohort.add_argument("--clip", type=float, default=Cohort.clip, help="the node's update clip C")
    cohort.add_argument("--smol-lr", type=float, default=Cohort.lr, help="SmolLM2's agent-lr")
    cohort.add_argument("--smol-lr-min", type=float, default=Cohort.lr_min, help="cosine floor")
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
    try:
        shape = Cohort(
            args.nodes,
            args.rounds,
            args.users_per_client,
            args.lora_rank,
            args.lora_targets,
            args.clip,
            args.smol_lr,
            args.smol_lr_min,
        )
    except ValueError as err:
        parser.error(str(err))
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
            noises = (0.0,) if args.dp_noise is None else (0.0, *args.dp_noise)
            noises = () if args.zero_shot_only else noises
            causal, encoder = args.models.split(",")
            payload["quality"] = quality_rows(
                Path(tmp), args.eval_users, args.seed, noises, (causal, encoder), shape
            )
            payload["cohort"] = vars(shape)
            print(
                f"\n{causal} vs {encoder}, {shape.rounds} rounds x {shape.nodes} clients x "
                f"{shape.users_per_client} users, {args.eval_users} evaluation users\n"
            )
            print(markdown(payload["quality"]))
    load = os.getloadavg()
    print(f"\n{machine_note(load_before, load)}; command: {command.strip()}")
    payload.update(load_before=load_before, load_after=load)
    name = "flowertune-steps" if args.only_steps else f"flowertune-seed{args.seed}"
    if args.dp_noise is not None and not args.only_steps:
        name = f"flowertune-dp{'-'.join(f'{z:g}' for z in args.dp_noise)}{tag(shape)}"
        name += f"-seed{args.seed}"
    if args.zero_shot_only and not args.only_steps:
        name = f"flowertune-zeroshot-{args.eval_users}users-seed{args.seed}"
    print(f"wrote {write_json(name, payload)}")


if __name__ == "__main__":
    main()
