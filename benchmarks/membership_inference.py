"""Membership inference against the federated agents, with and without user-level DP.

Issue 13, item 6. The federation (``benchmarks/federated.py``'s runs: MovieLens users, one per
device, MiniLM LoRA adapter + head, federation's ServerApp + ClientApp on the Simulation
Engine, every device in every round) trains on ``members``; ``non-members`` are other usable
users. The attacker holds the initial and the final global arrays and a candidate user's
training clicks (their newest positives), and scores the user by how much the training raised
the model's log-likelihood of those clicks (a loss-threshold attack with a per-user reference,
the strongest cheap one; Yeom et al. 2018, Carlini et al. 2022's calibration). Reported:
AUC and the best advantage ``max_t TPR - FPR`` over members vs non-members, next to the bound
every (epsilon, delta)-DP mechanism obeys: advantage <= (e^eps - 1 + 2 delta) / (e^eps + 1)
(Kairouz et al. 2015 / Humphries et al.), with epsilon the run summary's user-level
``privacy.epsilon_max`` (PLD, no amplification: every device is in every round).

    bash .ci/env python benchmarks/membership_inference.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import side_by_side
from benchmarks.federated import FULL, agent_config, run_federation

DELTA = 1e-5


def clicks_loglik(task: Any, arrays: dict[str, np.ndarray], user: int) -> float:
    """Mean log-likelihood of ``user``'s training clicks (its newest positives) under
    ``arrays``: the per-user statistic the attack thresholds."""
    from agents.lora import activate, state_version
    from agents.scoring import HEAD_KEYS, logits
    from federation.agent_task import AgentData

    contexts, ads, labels, priors = task.examples(
        arrays, AgentData((int(user),)), np.random.default_rng(0)
    )
    adapter = {k: v for k, v in arrays.items() if k not in HEAD_KEYS}
    activate(task.backbone, adapter, state_version(adapter))
    emb = task.backbone.embed(ads)
    z = np.array(
        [logits(c, e[None], arrays, p)[0] for c, e, p in zip(contexts, emb, priors, strict=True)]
    )
    pos = labels == 1
    return float(-np.logaddexp(0.0, -z[pos]).mean())  # log sigmoid of the clicks


def auc_and_advantage(members: np.ndarray, others: np.ndarray) -> tuple[float, float]:
    """(AUC of scores members > non-members, max_t TPR - FPR)."""
    scores = np.r_[members, others]
    is_member = np.r_[np.ones(members.size), np.zeros(others.size)]
    order = np.argsort(-scores, kind="stable")
    tpr = np.cumsum(is_member[order]) / members.size
    fpr = np.cumsum(1 - is_member[order]) / others.size
    ranks = scores.argsort().argsort() + 1.0
    auc = (ranks[: members.size].sum() - members.size * (members.size + 1) / 2) / (
        members.size * others.size
    )
    return float(auc), float(np.max(tpr - fpr))


def bound(epsilon: float) -> float:
    """Largest membership advantage an (epsilon, DELTA)-DP mechanism allows."""
    if math.isinf(epsilon):
        return 1.0
    return (math.expm1(epsilon) + 2 * DELTA) / (math.exp(epsilon) + 1)


def run(clients: int, rounds: int, targets: list[float | None], seed: int) -> list[dict]:
    from agents.privacy import noise_multiplier_for
    from federation.task import make_task

    sizes = FULL
    base = agent_config(sizes, seed, clients, **{"num-server-rounds": rounds})
    base["fraction-train"] = 1.0  # every member in every round: no sampling to hide behind
    task = make_task(base)
    members = np.array([task.load(p, clients).users[0] for p in range(clients)])
    rest = np.setdiff1d(task.usable_users(), members)
    others = np.random.default_rng([seed, 11]).choice(rest, size=clients, replace=False)
    initial = task.initial_arrays()
    start = {int(u): clicks_loglik(task, initial, u) for u in np.r_[members, others]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            cfg = dict(base)
            if target is not None:
                z = noise_multiplier_for(target, 1.0, rounds, DELTA)
                cfg.update(
                    {"dp": "central-fixed", "noise-multiplier": z, "clipping-norm": sizes.clip}
                )
            name = "none" if target is None else f"{target:g}"
            print(f"epsilon target {name}: {clients} devices x {rounds} rounds ...", flush=True)
            out = run_federation(cfg, Path(tmp) / f"eps-{name}")
            final = out["arrays"]

            def gain(u: int, final: dict = final) -> float:
                return clicks_loglik(task, final, u) - start[int(u)]

            m = np.array([gain(u) for u in members])
            o = np.array([gain(u) for u in others])
            auc, adv = auc_and_advantage(m, o)
            eps = float(out["summary"]["privacy"]["epsilon_max"])
            rows.append(
                {
                    "dp": "none" if target is None else "central-fixed",
                    "noise_multiplier": float(cfg.get("noise-multiplier", 0.0)),
                    "epsilon_user": eps,
                    "auc": auc,
                    "advantage": adv,
                    "advantage_bound": bound(eps),
                    "gain_members": float(np.mean(m)),
                    "gain_others": float(np.mean(o)),
                    "wall_s": out["wall_s"],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 devices, 1 round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clients, rounds = (16, 1) if args.quick else (48, 2)
    targets: list[float | None] = [None, 8.0, 3.0, 1.0]
    side_by_side(
        "membership_inference",
        lambda: run(clients, rounds, targets, args.seed),
        f"MovieLens, MiniLM LoRA r = {FULL.rank}, {clients} member devices (one user each) x "
        f"{rounds} rounds, {clients} non-members, seed {args.seed}, delta {DELTA}",
        lambda rows: {},
        clients=clients,
        rounds=rounds,
        seed=args.seed,
        delta=DELTA,
    )


if __name__ == "__main__":
    main()
