"""GTG-Shapley and TMC against exact Shapley on a simulated federated round of 10 clients.

The round: a linear click model (8 features) trained by 10 clients for one local epoch each
from the same global model; client data differ in size and label noise; client 8 is a free
rider (returns the global model), client 9 sends noise (the adversarial scenario; in the
honest one all ten train). Utility of a coalition = validation
log-likelihood gain of ``w_t + weighted mean of its updates`` (GTG-Shapley's sub-model
reconstruction). Exact Shapley evaluates all 1,024 coalitions.

Reported per method and budget: mean relative error ``||phi - phi*||_1 / ||phi*||_1``,
Spearman rank correlation with exact, distinct utility evaluations, seconds.
Target: GTG within 5% mean relative error and rank correlation >= 0.9 with <= 10% of exact's
evaluations (102).

    bash .ci/env python benchmarks/valuation.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import print_table, write_json
from incentives import MaxEvaluations, fl_utility, valuate

N, D = 10, 8


def simulated_round(seed: int = 0, adversarial: bool = True):
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=D)

    def data(m: int, noise: float):
        X = rng.normal(size=(m, D))
        y = (X @ w_true + noise * rng.normal(size=m) > 0).astype(float)
        return X, y

    def loglik(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        return float(np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))

    w0 = np.zeros(D)
    sizes = [400, 300, 250, 200, 150, 120, 100, 80, 100, 100]
    noises = [0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.5, 3.0, 4.0]
    updates, weights = [], []
    for i in range(N):
        if adversarial and i == 8:
            updates.append({"w": np.zeros(D)})  # free rider
        elif adversarial and i == 9:
            updates.append({"w": rng.normal(scale=2.0, size=D)})  # noise
        else:
            X, y = data(sizes[i], noises[i])
            w = w0.copy()
            for _ in range(20):
                p = 1 / (1 + np.exp(-X @ w))
                w -= 0.5 * X.T @ (p - y) / len(y)
            updates.append({"w": w - w0})
        weights.append(sizes[i])
    Xv, yv = data(2000, 0.0)
    base = loglik(w0, Xv, yv)
    return fl_utility({"w": w0}, updates, weights, lambda p: loglik(p["w"], Xv, yv) - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rows = []
    reps = 3 if args.quick else 10
    exact_values = {}
    for scenario in ("honest", "adversarial"):
        utility = simulated_round(adversarial=scenario == "adversarial")
        start = time.perf_counter()
        exact = valuate(utility, N, method="exact")
        exact_values[scenario] = exact.values.tolist()
        rows.append(
            {
                "scenario": scenario,
                "method": "exact",
                "budget": 1024,
                "rel_error": 0.0,
                "spearman": 1.0,
                "evaluations": exact.n_evaluations,
                "seconds": time.perf_counter() - start,
            }
        )
        for method in ("gtg", "tmc", "permutation"):
            for budget in (102, 200, 400):
                errs, rhos, evals, secs = [], [], [], []
                for seed in range(reps):
                    start = time.perf_counter()
                    res = valuate(
                        utility,
                        N,
                        method=method,
                        rng=seed,
                        truncation=0.01,
                        stopping=MaxEvaluations(budget),
                    )
                    secs.append(time.perf_counter() - start)
                    errs.append(
                        np.abs(res.values - exact.values).sum() / np.abs(exact.values).sum()
                    )
                    rhos.append(spearmanr(res.values, exact.values).statistic)
                    evals.append(res.n_evaluations)
                rows.append(
                    {
                        "scenario": scenario,
                        "method": method,
                        "budget": budget,
                        "rel_error": float(np.mean(errs)),
                        "spearman": float(np.mean(rhos)),
                        "evaluations": float(np.mean(evals)),
                        "seconds": float(np.mean(secs)),
                    }
                )
    print_table(
        rows, ["scenario", "method", "budget", "rel_error", "spearman", "evaluations", "seconds"]
    )
    gtg = next(
        r for r in rows if r["scenario"] == "honest" and r["method"] == "gtg" and r["budget"] == 102
    )
    verdict = {
        "gtg_at_10pct_evals_rel_error_le_5pct": gtg["rel_error"] <= 0.05,
        "gtg_at_10pct_evals_spearman_ge_0_9": gtg["spearman"] >= 0.9,
    }
    print("exact values:", {k: np.round(v, 4).tolist() for k, v in exact_values.items()})
    print(verdict)
    path = write_json(
        "valuation",
        {"quick": args.quick, "rows": rows, "exact_values": exact.values.tolist(), **verdict},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
