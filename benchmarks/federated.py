"""Federated training of the agents' LoRA adapter + head (MiniLM, r=8) on MovieLens-100k.

Every MovieLens user is one device; users are dealt to N clients (``federation.agent_task``),
each client keeps at most ``--users`` of them. Three tables:

1. Scaling (10, 50, 200 clients): seconds per round and rounds to a target NDCG@10.
   - ``ray``: the Flower Simulation Engine runs federation's ServerApp/ClientApp
     (``run_simulation``, one Ray actor per core, every client every round). Its seconds per
     round are the server's (a round's training plus the previous round's federated
     evaluation on the clients' partitions).
   - ``in-process``: the same ``client_update`` a ClientApp computes, for a seeded cohort of
     clients per round, aggregated with Flower's FedAvg code (``aggregate_arrayrecords``
     weighted by examples); seconds per round = the cohort's training + aggregation in one
     process. 200 clients x MiniLM through Ray do not fit 2 cores, so 50 and 200 run so.
2. Bytes per round: the adapter + head up and down per client vs sending the full model.
3. NDCG@10 vs epsilon (1, 3, 8, no DP): local DP-SGD on every client; the noise multiplier is
   chosen so that all rounds together spend the target (example-level: one click-log row,
   delta 1e-5, RDP), i.e. ``noise_multiplier_for(eps, q, rounds x steps)``.

NDCG@10 / Precision@10 of each global adapter are measured centrally on a fixed sample of
users (their held-out newest positives; candidates: every movie they have not rated).
Timings are wall clock on a shared, loaded 2-core machine.

    bash .ci/env python benchmarks/federated.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import print_table, write_json
from federation.accounting import array_bytes
from federation.agent_task import AgentData
from federation.client_app import client_update
from federation.server_app import load_checkpoint
from federation.settings import settings
from federation.task import make_task


def agent_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The checked run config of the agent task for this benchmark."""
    return settings(
        {
            "task": "agent",
            "model": args.model,
            "lora-rank": args.rank,
            "users-per-client": args.users,
            "local-epochs": args.epochs,
            "agent-lr": args.lr,
            "seed": args.seed,
            **extra,
        }
    )


class CentralEval:
    """NDCG@10 / Precision@10 of global arrays on a fixed user sample (cached per state)."""

    def __init__(self, cfg: dict[str, Any], n_users: int, seed: int) -> None:
        self.task = make_task(cfg)
        users = np.random.default_rng([seed, 7]).permutation(self.task.usable_users())
        self.data = AgentData(tuple(int(u) for u in users[:n_users]))
        self._seen: dict[str, dict[str, float]] = {}

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        from agents import state_version

        key = state_version(arrays)
        if key not in self._seen:
            self._seen[key] = self.task.evaluate(arrays, self.data)
        return self._seen[key]


def in_process(
    cfg: dict[str, Any], cohort: int, rounds: int, central: CentralEval, target: float
) -> dict[str, Any]:
    """FedAvg rounds in this process over a seeded cohort; stops once ``target`` is reached."""
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    n = int(cfg["num-nodes"])
    arrays = make_task(cfg).initial_arrays()
    pick = np.random.default_rng([int(cfg["seed"]), n, 3])
    curve, seconds, eps = [central(arrays)["ndcg@10"]], [], []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        replies = []
        for pid in sorted(pick.choice(n, size=cohort, replace=False)):
            new, _, metrics = client_update(cfg, int(pid), n, arrays, r)
            eps.append(metrics.get("epsilon", math.inf))
            replies.append(
                RecordDict(
                    {
                        "arrays": ArrayRecord({k: Array(v) for k, v in new.items()}),
                        "metrics": MetricRecord(metrics),
                    }
                )
            )
        arrays = {k: a.numpy() for k, a in aggregate_arrayrecords(replies, "num-examples").items()}
        seconds.append(time.perf_counter() - start)
        curve.append(central(arrays)["ndcg@10"])
        if curve[-1] >= target:
            break
    return {"curve": curve, "seconds": seconds, "arrays": arrays, "epsilon_per_run": eps}


def through_ray(
    cfg: dict[str, Any], central: CentralEval, folder: Path, target: float
) -> dict[str, Any]:
    """The real apps in the Simulation Engine; NDCG of each round's checkpoint, centrally."""
    from flwr.simulation import run_simulation

    from federation.client_app import app as client_app
    from federation.server_app import make_server_app

    out, ckpt = folder / "ray.json", folder / "ckpt"
    run_cfg = {**cfg, "output": str(out), "checkpoint-dir": str(ckpt)}
    start = time.perf_counter()
    run_simulation(
        server_app=make_server_app(**run_cfg),
        client_app=client_app,
        num_supernodes=int(cfg["num-nodes"]),
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    wall = time.perf_counter() - start
    summary = json.loads(out.read_text())
    curve = [central(make_task(cfg).initial_arrays())["ndcg@10"]]
    for r in range(1, int(cfg["num-server-rounds"]) + 1):
        with np.load(ckpt / f"round-{r:05d}.npz") as z:
            curve.append(central({k: z[k] for k in z.files})["ndcg@10"])
    assert load_checkpoint(ckpt)[0] == int(cfg["num-server-rounds"])
    return {
        "curve": curve,
        "seconds": summary["round_seconds"],
        "wall_s": wall,
        "client_ndcg": {r: m["ndcg@10"] for r, m in summary["evaluate"].items()},
        "bytes_up_per_client": summary["train"]["1"]["bytes-up"],
    }


def rounds_to(curve: list[float], target: float) -> int | str:
    hit = [r for r, v in enumerate(curve) if v >= target]
    return hit[0] if hit else f"> {len(curve) - 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, users and clients")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (agent-lr)")
    parser.add_argument("--epochs", type=int, default=5, help="local epochs per round")
    parser.add_argument(
        "--target", type=float, default=0.03, help="NDCG@10 target (zero-shot: ~0.017)"
    )
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument(
        "--skip-epsilon", action="store_true", help="no epsilon curve (writes federated_scaling)"
    )
    args = parser.parse_args()
    args.users = 2 if args.quick else 4
    rounds = 2 if args.quick else 4  # in-process runs stop earlier at the target
    ray_rounds = 2 if args.quick else 3
    eps_rounds = 2 if args.quick else 3
    eval_users = 60 if args.quick else 200
    cohorts = {10: 10, 50: 10, 200: 20}

    central = CentralEval(agent_config(args), eval_users, args.seed)
    task = make_task(agent_config(args))
    zero_shot = central(task.initial_arrays())
    target = args.target
    print(f"zero-shot NDCG@10 {zero_shot['ndcg@10']:.4f} on {eval_users} users; target {target}")

    scaling, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_ray:
            cfg = agent_config(args, **{"num-nodes": 10, "num-server-rounds": ray_rounds})
            runs["ray-10"] = through_ray(cfg, central, Path(tmp), target)
            scaling.append(("ray", 10, 10, runs["ray-10"]))
    for n, cohort in cohorts.items():
        if n == 10 and not args.no_ray and args.quick:
            continue  # quick: 10 clients only through Ray
        cfg = agent_config(args, **{"num-nodes": n, "num-server-rounds": rounds})
        runs[f"in-process-{n}"] = in_process(cfg, cohort, rounds, central, target)
        scaling.append(("in-process", n, cohort, runs[f"in-process-{n}"]))
    rows = [
        {
            "engine": engine,
            "clients": n,
            "per_round": cohort,
            "users/client": args.users,
            "s/round": float(np.mean(run["seconds"])),
            "rounds_run": len(run["curve"]) - 1,
            f"rounds_to_{target}": rounds_to(run["curve"], target),
            "ndcg@10_first": run["curve"][1],
            "ndcg@10_last": run["curve"][-1],
        }
        for engine, n, cohort, run in scaling
    ]
    print("\nScaling (NDCG@10 central, on the fixed user sample; round 0 = zero-shot)")
    cols = ["engine", "clients", "per_round", "users/client", "s/round", "rounds_run"]
    print_table(rows, [*cols, f"rounds_to_{target}", "ndcg@10_first", "ndcg@10_last"])
    for name, run in runs.items():
        print(
            f"{name}: NDCG@10 by round {np.round(run['curve'], 4).tolist()}, s/round "
            f"{np.round(run['seconds'], 1).tolist()}"
        )
    if "ray-10" in runs and "in-process-10" in runs:
        a, b = runs["ray-10"]["curve"], runs["in-process-10"]["curve"]
        gap = max(abs(x - y) for x, y in zip(a, b, strict=False))
        print(
            f"same config through Ray and in-process: max |NDCG@10 gap| {gap:.2g} "
            f"over {min(len(a), len(b)) - 1} rounds (the client updates are seeded)"
        )

    lora, full = array_bytes(task.initial_arrays()), task.full_model_bytes()
    byte_rows = [
        {
            "clients/round": cohort,
            "lora_KiB/client": lora / 1024,
            "full_MiB/client": full / 2**20,
            "lora_MiB/round": 2 * cohort * lora / 2**20,
            "full_MiB/round": 2 * cohort * full / 2**20,
            "ratio": full / lora,
        }
        for cohort in sorted(set(cohorts.values()))
    ]
    print("\nBytes per round (up + down; LoRA r=8 adapter + head vs the full fine-tuned model)")
    print_table(byte_rows, list(byte_rows[0]))
    if "ray-10" in runs:
        print(f"measured in the Ray run: {runs['ray-10']['bytes_up_per_client']:.0f} B up/client")

    from agents.privacy import epsilon, noise_multiplier_for

    eps_levels = () if args.skip_epsilon else (None, 8.0, 3.0, 1.0)
    n_clients, per_client = 10, 2 * 4 * args.users  # positives-per-user = 4
    batch = int(agent_config(args)["batch-size"])
    q = min(1.0, batch / per_client)
    steps = round(args.epochs * per_client / batch)
    eps_rows = []
    for target_eps in eps_levels:
        extra: dict[str, Any] = {"num-nodes": n_clients, "num-server-rounds": eps_rounds}
        if target_eps is not None:
            z = noise_multiplier_for(target_eps, q, eps_rounds * steps, 1e-5)
            extra.update({"dp-sgd-clipping-norm": 1.0, "dp-sgd-noise-multiplier": z})
        run = in_process(agent_config(args, **extra), n_clients, eps_rounds, central, math.inf)
        total = math.inf if target_eps is None else epsilon(z, q, eps_rounds * steps, 1e-5)
        eps_rows.append(
            {
                "epsilon": "no DP" if target_eps is None else target_eps,
                "spent": total,
                "per_round_run": float(np.mean(run["epsilon_per_run"])),
                "noise": 0.0 if target_eps is None else z,
                "ndcg@10": run["curve"][-1],
                "best_round_ndcg@10": max(run["curve"][1:]),
                "precision@10": central(run["arrays"])["precision@10"],
            }
        )
        print_table(eps_rows[-1:], list(eps_rows[-1]))
    if eps_rows:
        print(
            f"\nNDCG@10 vs epsilon ({n_clients} clients x {args.users} users, {eps_rounds} rounds, "
            f"in-process; example-level DP-SGD, q={q:.2f}, {steps} steps/round, delta 1e-5)"
        )
        print_table(eps_rows, list(eps_rows[0]))

    def plain(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else str(v)

    write_json(
        "federated_scaling" if args.skip_epsilon else "federated",
        {
            "quick": args.quick,
            "seed": args.seed,
            "model": args.model,
            "rank": args.rank,
            "lr": args.lr,
            "local_epochs": args.epochs,
            "eval_users": eval_users,
            "zero_shot": zero_shot,
            "target": target,
            "scaling": [{k: plain(v) for k, v in r.items()} for r in rows],
            "curves": {k: v["curve"] for k, v in runs.items()},
            "bytes": byte_rows,
            "epsilon": [{k: plain(v) for k, v in r.items()} for r in eps_rows],
        },
    )


if __name__ == "__main__":
    main()
