"""Federated LoRA agents on MovieLens-100k through the one federated system: NDCG@10 vs
user-level epsilon (3 seeds), seconds per economy round, bytes per round.

No round loop here: every federated round runs through the project's one round core.
Each run is federation's ServerApp (``federation.server_app.make_server_app(**run_config)``,
whose ``run_server`` calls ``federation.rounds.train_round``) with federation's ClientApp
(``federation.client_app.app``, ``task = "agent"``) on Flower's Simulation Engine
(``flwr.simulation.run_simulation``, one Ray actor per core); the script reads the final
global arrays from the run's checkpoint folder (``load_checkpoint``) and the per-round
summary from its ``output`` JSON.

1. NDCG@10 vs user-level epsilon, mean and sd over seeds (0, 1, 2 by default). MovieLens-100k
   users are the devices, one user per Flower node (``users-per-client = 1``): the 924 usable
   users are dealt to ``num-nodes`` seeded partitions and each node is the first user of its
   own (462 devices by default). Each round the strategy samples ``fraction-train`` of them;
   a device trains the MiniLM LoRA adapter (r=8) + head (``federation.agent_task.AgentTask``:
   every movie carries the exchange's public prior, the head learns its weight) with Adam on
   its 4 newest history positives against 4 sampled unrated movies. Rows: popularity (rank
   by the exchange's count of training positives), zero-shot (the initial arrays: base
   MiniLM, cosine head, prior weight 0), federated LoRA without DP and at user-level
   epsilon 8, 3, 1.

   Sizes: one round of 138 devices (q = 0.30), 10 local Adam steps at lr 1e-2. Under central
   DP the noise on the mean update is ``z x clip / cohort``, the same on each of the 74,115
   coordinates, and Adam moves every coordinate by about lr per step, so what decides the
   outcome is cohort / z: at equal compute one round of 138 spends less privacy than 2-3
   rounds of 46-69 (no composition), and fewer nodes cost less engine time (Flower's
   in-memory Simulation Engine checks every node's queue against every pending message
   every 0.1 s, so a round costs about nodes x cohort on top of the training).

   DP is central over clients (``dp = "central-fixed"``: Flower's server-side DP-FedAvg,
   ``DifferentialPrivacyServerSideFixedClipping``): the server clips each client's whole
   update to ``clipping-norm`` and adds Gaussian noise ``noise-multiplier x clipping-norm`` to
   the sum, so the guarantee covers everything a client holds; client-level DP implies
   user-level DP, and here a client is exactly one user. Epsilon per user is
   ``agents.privacy.epsilon(z, q = fraction-train, rounds, delta = 1e-5)`` (RDP over
   ``rounds`` Poisson-subsampled Gaussian mechanisms; Flower samples a fixed-size cohort,
   the usual approximation), i.e. the run summary's ``privacy.epsilon_amplified``, and
   ``z = noise_multiplier_for(epsilon, q, rounds, 1e-5)``. Local DP-SGD is off in every row
   (``dp-sgd-clipping-norm = dp-sgd-noise-multiplier = 0``), so the epsilon is the central
   one only. The clipping norm is the median per-client update norm of the no-DP setting,
   measured once (``--clip``); choosing it from data is not itself private (as usual in
   benchmarks). Federated evaluation is off (``fraction-evaluate = 0``): NDCG@10 is measured
   centrally by ``AgentTask.evaluate`` on a fixed sample of users per seed (their held-out
   newest positives; candidates: every movie they have not rated).

2. Seconds per economy round on the Simulation Engine at 10, 50, 200 devices: the economy
   (``economy.runner.run_market``, MiniLM agents, synthetic world) with ``market.users`` =
   devices, ``federated.every = 1``, ``federated.clients_per_round = 8``; the per-step
   ``fed_seconds`` of the run folder's ``metrics.csv`` (wall time of each federated round:
   training, aggregation, valuation, payment). Start-up = total wall time minus the steps.

3. Bytes per round: the adapter + head up and down per client vs the full model (from the
   no-DP run's summary: ``model_bytes``, ``full_model_bytes``, ``bytes-up``).

Wall clock on a shared 2-core machine: the load average is printed with every table.

    bash .ci/env python benchmarks/federated.py [--quick] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import print_table, write_json

DELTA = 1e-5
EPSILONS = (None, 8.0, 3.0, 1.0)  # None: no DP
ESTIMATE = (
    "full run: 40 min measured on 2 shared cores at load average 2-3.5 (12 federated runs of "
    "about 3 min, 3 economy runs of about 30 s); --skip-quality: about 2 min"
)


@dataclass(frozen=True)
class Sizes:
    """What one benchmark run trains and measures (``FULL`` or ``QUICK``)."""

    rank: int  # LoRA rank
    clients: int  # devices, one user each (0: every usable user, 924)
    per_round: int  # clients sampled per round (fraction-train = per_round / clients)
    rounds: int
    epochs: int  # local epochs (4 positives + 4 sampled non-clicks per user, batch 16)
    lr: float  # agent-lr (Adam)
    clip: float  # central clipping norm: the median no-DP client update norm
    eval_users: int
    econ_devices: tuple[int, ...]
    econ_steps: int


FULL = Sizes(
    rank=8,
    clients=462,
    per_round=138,
    rounds=1,
    epochs=20,
    lr=1e-2,
    clip=9.0,
    eval_users=200,
    econ_devices=(10, 50, 200),
    econ_steps=4,
)
QUICK = replace(
    FULL, clients=200, per_round=8, rounds=2, eval_users=40, econ_devices=(10,), econ_steps=3
)


def header(title: str) -> None:
    """The table's title with the date, the machine load and the command."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cmd = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"\n{title}\n  {time.strftime('%Y-%m-%d %H:%M:%S')}, load average {load}, `{cmd}`")


def agent_config(sizes: Sizes, seed: int, clients: int, **extra: Any) -> dict[str, Any]:
    """The checked run config of one federated agent run (no DP-SGD, no federated eval)."""
    from federation.settings import settings

    return settings(
        {
            "task": "agent",
            "model": "minilm",
            "lora-rank": sizes.rank,
            "users-per-client": 1,
            "positives-per-user": 4,
            "batch-size": 16,
            "local-epochs": sizes.epochs,
            "agent-lr": sizes.lr,
            "num-nodes": clients,
            "num-server-rounds": sizes.rounds,
            "fraction-train": sizes.per_round / clients,
            "fraction-evaluate": 0.0,
            "dp-sgd-clipping-norm": 0.0,
            "dp-sgd-noise-multiplier": 0.0,
            "seed": seed,
            **extra,
        }
    )


def run_federation(cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Federation's ServerApp + ClientApp on the Simulation Engine; the final arrays (from
    the checkpoint folder), the summary (``output``) and the wall time."""
    from flwr.simulation import run_simulation

    from federation.client_app import app as client_app
    from federation.server_app import load_checkpoint, make_server_app

    out, ckpt = folder / "summary.json", folder / "checkpoints"
    run_cfg = {**cfg, "output": str(out), "checkpoint-dir": str(ckpt)}
    start = time.perf_counter()
    run_simulation(
        server_app=make_server_app(**run_cfg),
        client_app=client_app,
        num_supernodes=int(cfg["num-nodes"]),
        backend_config={
            "client_resources": {"num_cpus": 1},
            "init_args": {"logging_level": "ERROR", "log_to_driver": False},
        },
    )
    wall = time.perf_counter() - start
    found = load_checkpoint(ckpt) if out.is_file() else None
    if found is None or found[0] != int(cfg["num-server-rounds"]):
        raise RuntimeError(f"the federated run did not finish (no final checkpoint in {ckpt})")
    summary = json.loads(out.read_text())
    if summary["rejected"]:
        raise RuntimeError(f"replies were rejected: {summary['rejected']}")
    return {"arrays": found[1], "summary": summary, "wall_s": wall}


class Evaluation:
    """NDCG@10 / Precision@10 on a fixed sample of users (one per seed), centrally."""

    def __init__(self, cfg: dict[str, Any], n_users: int) -> None:
        from federation.agent_task import AgentData
        from federation.task import make_task

        self.task = make_task(cfg)
        users = np.random.default_rng([int(cfg["seed"]), 7]).permutation(self.task.usable_users())
        self.data = AgentData(tuple(int(u) for u in users[:n_users]))

    def popularity(self) -> dict[str, float]:
        """Ranking every unrated movie by the exchange's count of training positives."""
        from agents.datasets import precision_ndcg_at_k
        from federation.agent_task import movielens_world

        world = movielens_world()
        rows = [
            precision_ndcg_at_k(
                world.item_prior, world.item_ids, world.users[u].test, world.users[u].seen, k=10
            )
            for u in self.data.users
        ]
        precision, ndcg = np.mean(rows, axis=0)
        return {"ndcg@10": float(ndcg), "precision@10": float(precision)}

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        import torch

        torch.set_num_threads(max(1, os.cpu_count() or 1))  # Ray is done: both cores
        return self.task.evaluate(arrays, self.data)


def update_norm(start: dict[str, np.ndarray], end: dict[str, np.ndarray]) -> float:
    """L2 norm of the change of the global arrays."""
    return float(math.sqrt(sum(float(((end[k] - start[k]) ** 2).sum()) for k in start)))


def one_seed(
    sizes: Sizes, seed: int, clients: int, epsilons: tuple[float | None, ...], tmp: Path
) -> list[dict[str, Any]]:
    """Every row of table 1 for one seed (popularity, zero-shot, each epsilon; None: no DP)."""
    from agents.privacy import noise_multiplier_for

    base = agent_config(sizes, seed, clients)
    evaluation = Evaluation(base, sizes.eval_users)
    initial = evaluation.task.initial_arrays()
    rows = [
        {"seed": seed, "row": "popularity", "epsilon": "-", **evaluation.popularity()},
        {"seed": seed, "row": "zero-shot", "epsilon": "-", **evaluation(initial)},
    ]
    q = sizes.per_round / clients
    for eps in epsilons:
        if eps is None:
            cfg, z = base, 0.0
        else:
            z = noise_multiplier_for(eps, q, sizes.rounds, DELTA)
            cfg = agent_config(
                sizes,
                seed,
                clients,
                **{"dp": "central-fixed", "noise-multiplier": z, "clipping-norm": sizes.clip},
            )
        name = "no DP" if eps is None else f"epsilon {eps:g}"
        print(f"seed {seed}, {name}: {clients} devices, {sizes.per_round}/round ...", flush=True)
        run = run_federation(cfg, tmp / f"seed{seed}-{name.replace(' ', '')}")
        privacy = run["summary"].get("privacy", {})
        scores = evaluation(run["arrays"])
        rows.append(
            {
                "seed": seed,
                "row": f"federated LoRA, {name}",
                "epsilon": privacy.get("epsilon_amplified", math.inf),
                # per user, as it happened (no sampling assumption): the conservative figure
                "epsilon_unamplified": privacy.get("epsilon_max", math.inf),
                "noise_multiplier": z,
                **scores,
                "prior_weight": float(run["arrays"]["head.prior"][0]),
                "global_update_norm": update_norm(initial, run["arrays"]),
                "wall_s": run["wall_s"],
                "round_seconds": run["summary"]["round_seconds"],
                "summary": {
                    k: run["summary"][k] for k in ("model_bytes", "full_model_bytes", "train")
                },
            }
        )
        last = rows[-1]
        print(
            f"  NDCG@10 {last['ndcg@10']:.4f} (popularity {rows[0]['ndcg@10']:.4f}), "
            f"epsilon {last['epsilon']:.3g}, z {z:.3f}, prior weight {last['prior_weight']:.3f}, "
            f"wall {last['wall_s']:.0f} s",
            flush=True,
        )
    return rows


def quality_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds of each row, and of its NDCG@10 minus popularity's (paired)."""
    names = list(dict.fromkeys(r["row"] for r in rows))
    pop = {r["seed"]: r["ndcg@10"] for r in rows if r["row"] == "popularity"}
    out = []
    for name in names:
        mine = [r for r in rows if r["row"] == name]
        ndcg = np.array([r["ndcg@10"] for r in mine])
        gap = np.array([r["ndcg@10"] - pop[r["seed"]] for r in mine])
        sd = lambda a: float(a.std(ddof=1)) if a.size > 1 else float("nan")  # noqa: E731
        eps = mine[0]["epsilon"]
        out.append(
            {
                "row": name,
                "epsilon": eps if isinstance(eps, str) else (float(eps) if eps < 1e9 else "inf"),
                "noise_mult": mine[0].get("noise_multiplier", "-"),
                "ndcg@10_mean": float(ndcg.mean()),
                "ndcg@10_sd": sd(ndcg),
                "minus_pop_mean": float(gap.mean()),
                "minus_pop_sd": sd(gap),
                "p@10_mean": float(np.mean([r["precision@10"] for r in mine])),
                "seeds": len(mine),
            }
        )
    return out


def economy_round_seconds(devices: int, steps: int, seed: int, tmp: Path) -> dict[str, Any]:
    """One economy run on the Simulation Engine; seconds per federated round from
    ``metrics.csv`` and the start-up (total wall time minus the steps)."""
    from economy.config import parse_config
    from economy.runner import run_market

    cfg = parse_config(
        {
            "name": f"fedbench-{devices}",
            "seed": seed,
            "output_dir": str(tmp / f"economy-{devices}"),
            "market": {"users": devices, "steps": steps},
            "agents": {"scorer": "lm", "model": "minilm"},
            "federated": {"every": 1, "clients_per_round": 8},
        }
    )
    stamps: list[float] = []
    start = time.perf_counter()
    run = run_market(cfg, on_step=lambda _state: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - start
    with open(run / "metrics.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    fed = np.array([float(r["fed_seconds"]) for r in table])
    trained = [int(float(r["fed_clients"])) for r in table]  # accepted updates per round
    # A step = the market's fast path + its federated round: the market's share is measured
    # on steps 2.. (step 1's start is not observable), so start-up = time to the end of
    # step 1 minus step 1; teardown = after the last step (engine shutdown, summary).
    steps = np.diff(np.array([start, *stamps]) - start)
    market = float(np.median(steps[1:] - fed[1:])) if len(steps) > 1 else 0.0
    return {
        "devices": devices,
        "clients/round": min(8, devices),
        "trained/round": "/".join(map(str, trained)),
        "steps": len(fed),
        "s/round_median": float(np.median(fed)),
        "s/round_first": float(fed[0]),
        "s/round_max": float(fed.max()),
        "market_s/step": market,
        "startup_s": float(steps[0] - fed[0] - market),
        "teardown_s": wall - (stamps[-1] - start),
        "wall_s": wall,
        "fed_seconds": fed.tolist(),
    }


def byte_rows(summary: dict[str, Any], per_round: int) -> list[dict[str, Any]]:
    lora, full = summary["model_bytes"], summary["full_model_bytes"]
    up = summary["train"]["1"]["bytes-up"]
    return [
        {
            "clients/round": per_round,
            "lora_KiB/client": lora / 1024,
            "full_MiB/client": full / 2**20,
            "lora_MiB/round": 2 * per_round * lora / 2**20,
            "full_MiB/round": 2 * per_round * full / 2**20,
            "ratio": full / lora,
            "measured_up_B/round": up,
        }
    ]


def report_quality(
    rows: list[dict[str, Any]], sizes: Sizes, clients: int, seeds: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Print tables 1 and 3 (bytes, from the no-DP run's summary); return them."""
    table = quality_table(rows)
    header(
        f"NDCG@10 on MovieLens-100k, {len(seeds)} seed(s) {seeds} (mean, sd over seeds; "
        f"'minus_pop': paired NDCG@10 - popularity's)\n  {clients} devices (1 user each), "
        f"{sizes.per_round} per round (q = {sizes.per_round / clients:.3f}), {sizes.rounds} "
        f"round(s), MiniLM LoRA r={sizes.rank} + head, {sizes.epochs} local epochs of Adam at "
        f"lr {sizes.lr:g}; central DP-FedAvg (clip {sizes.clip:g}), user-level epsilon at "
        f"delta {DELTA:g}; {sizes.eval_users} evaluation users per seed"
    )
    print_table(table, list(table[0]))
    no_dp = next((r for r in rows if r["row"] == "federated LoRA, no DP"), None)
    if no_dp is None:
        return table, []
    print(
        f"no-DP run: global update norm {no_dp['global_update_norm']:.3g} after "
        f"{sizes.rounds} round(s) (mean of the clients' updates; clip {sizes.clip:g}), "
        f"prior weight {no_dp['prior_weight']:.3f}"
    )
    bytes_table = byte_rows(no_dp["summary"], sizes.per_round)
    header("Bytes per round (up + down; LoRA adapter + head vs the full fine-tuned model)")
    print_table(bytes_table, list(bytes_table[0]))
    return table, bytes_table


def report_economy(sizes: Sizes, seed: int, tmp: Path) -> list[dict[str, Any]]:
    """Run and print table 2."""
    econ = []
    for devices in sizes.econ_devices:
        print(f"economy: {devices} devices, {sizes.econ_steps} steps ...", flush=True)
        econ.append(economy_round_seconds(devices, sizes.econ_steps, seed, tmp))
    header(
        "Seconds per economy round on the Simulation Engine (MiniLM agents, synthetic world, "
        f"federated.every = 1, 8 clients per round, {sizes.econ_steps} steps; metrics.csv "
        "fed_seconds; trained/round: accepted updates of each round)"
    )
    print_table(econ, [k for k in econ[0] if k != "fed_seconds"])
    return econ


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog=f"Time: {ESTIMATE}; --quick: about 5 min.",
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, tiny sizes (smoke check)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--clip", type=float, default=None, help="central clipping norm")
    parser.add_argument("--devices", type=int, default=None, help="devices (Flower nodes)")
    parser.add_argument("--per-round", type=int, default=None, help="clients sampled per round")
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds")
    parser.add_argument(
        "--epsilons", default=None, help="comma-separated targets, 'none' = no DP (none,8,3,1)"
    )
    parser.add_argument("--skip-economy", action="store_true", help="no economy table")
    parser.add_argument("--skip-quality", action="store_true", help="only the economy table")
    parser.add_argument(
        "--tag", default="", help="write results/federated_<tag>.json (for variations)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)  # dp-accounting's RDP convergence notes
    logging.getLogger("flwr").propagate = False  # Flower prints its own lines once
    sizes = QUICK if args.quick else FULL
    flags = {"clip": "clip", "per_round": "per_round", "rounds": "rounds", "devices": "clients"}
    for flag, field in flags.items():
        if getattr(args, flag) is not None:
            sizes = replace(sizes, **{field: getattr(args, flag)})
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    epsilons = EPSILONS
    if args.epsilons:
        epsilons = tuple(None if e == "none" else float(e) for e in args.epsilons.split(","))
    started = time.perf_counter()

    from federation.agent_task import AgentTask

    clients = sizes.clients or int(AgentTask(positives=4).usable_users().size)
    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    bytes_table: list[dict[str, Any]] = []
    econ: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fedbench-") as tmp:
        if not args.skip_quality:
            for seed in seeds:
                rows.extend(one_seed(sizes, seed, clients, epsilons, Path(tmp)))
                save(args, sizes, clients, seeds, started, {"per_seed": rows, "complete": False})
            table, bytes_table = report_quality(rows, sizes, clients, seeds)
        if not args.skip_economy:
            econ = report_economy(sizes, seeds[0], Path(tmp))
    total = time.perf_counter() - started
    print(f"\ntotal wall time {total / 60:.1f} min")
    results = {"quality": table, "per_seed": rows, "bytes": bytes_table, "economy": econ}
    save(args, sizes, clients, seeds, started, {**results, "complete": True})


def plain(v: Any) -> Any:
    """JSON-safe: non-finite floats as strings, run summaries left out."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items() if k != "summary"}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def save(
    args: argparse.Namespace,
    sizes: Sizes,
    clients: int,
    seeds: list[int],
    started: float,
    results: dict[str, Any],
) -> None:
    """``benchmarks/results/federated[_quick][_<tag>].json`` (after each seed, and at the end)."""
    name = "federated_quick" if args.quick else "federated"
    write_json(
        f"{name}_{args.tag}" if args.tag else name,
        plain(
            {
                "command": shlex.join(sys.argv),
                "load_average": list(os.getloadavg()),
                "wall_s": time.perf_counter() - started,
                "sizes": asdict(sizes),
                "devices": clients,
                "seeds": seeds,
                "delta": DELTA,
                **results,
            }
        ),
    )


if __name__ == "__main__":
    main()
