"""Does gaming a round's payment pay? Per-identity Shapley pay (before) vs ``RoundPayer`` (after).

A federated round of linear regression (numpy only): ``honest`` clients each hold ``n``
examples ``y = x . theta + noise`` (d = 8, noise sd 0.5) and send the update of 5 local
gradient steps (lr 0.1) from ``w_t = 0``; a coalition's utility is minus the validation MSE
(400 held-out examples) of ``w_t +`` the weighted mean of its updates. Every client was
assigned ``n`` examples (the caps). Payments, exact Shapley values in both rules:

- before: ``fl_utility`` on the raw updates and claims, ``RewardPolicy.pay`` per identity
  (the rule before issue 14: concave pay and a floor per identity);
- after: ``RoundPayer.pay`` with the caps (``incentives.gaming``: claims capped,
  near-duplicates grouped, every update valued at one norm, the round's tokens per claimed
  example); the norm is the round's median, or 1.0 set by the server (``norm=``).

Policy ``RewardPolicy(revenue_share=0.1)``, revenue 1,000 (budget 100, not binding). Gamers:

- ``sybil k``: client 0 splits its data into k identities (each trains on its part, claims
  and was assigned n/k); pay of all k / client 0's honest pay (k = 1 is the honest run);
- ``copier``: an extra client with no data sends 2x client 1's update, claims n; its pay /
  client 1's honest pay, and client 1's loss (honest pay - pay with the copier) / that pay;
- ``scaler x2``, ``x3``: client 0 sends its update times 2 or 3;
- ``free rider``: an extra client sends a zero update (w_t back), claims n; its pay / the
  mean honest pay;
- ``size liar``: client 0 claims 1e6 examples; its pay / its honest pay, and the others'
  total pay / their honest total.

Ratios are the mean and the largest over seeds.

    bash .ci/env python benchmarks/incentive_gaming.py [--seeds K] [--honest M] [--n N]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import machine_note, print_table, write_json
from incentives import Ledger, RewardPolicy, RoundPayer, fl_utility, shapley_values

D, STEPS, LR, NOISE, REVENUE = 8, 5, 0.1, 0.5, 1000.0
SET_NORM = 1.0  # a norm the server sets (as a DP clipping norm), for the "after, norm" rule
Client = tuple[np.ndarray, float, float]  # (update, claim, cap)


def local_update(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """5 gradient steps of least squares from w_t = 0: (d,)."""
    w = np.zeros(D)
    for _ in range(STEPS):
        w -= LR * X.T @ (X @ w - y) / len(y)
    return w


class Round:
    """One seed's data: ``honest`` clients of ``n`` examples and a validation set."""

    def __init__(self, seed: int, honest: int, n: int) -> None:
        rng = np.random.default_rng(seed)
        theta = rng.normal(size=D)

        def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
            X = rng.normal(size=(m, D))
            return X, X @ theta + NOISE * rng.normal(size=m)

        self.val = draw(400)
        self.data = [draw(n) for _ in range(honest)]
        self.n = n
        self.clients: list[Client] = [(local_update(*d), n, n) for d in self.data]

    def evaluate(self, params: dict[str, np.ndarray]) -> float:
        X, y = self.val
        return -float(np.mean((X @ params["w"] - y) ** 2))


def pay_before(r: Round, clients: list[Client]) -> np.ndarray:
    """Per-identity Shapley values of the raw updates and claims, ``RewardPolicy.pay``."""
    ups = [{"w": u} for u, _, _ in clients]
    utility = fl_utility({"w": np.zeros(D)}, ups, [c for _, c, _ in clients], r.evaluate)
    values = shapley_values(utility, len(clients), method="exact")
    return RewardPolicy(revenue_share=0.1).pay(values, REVENUE)


def pay_after(r: Round, clients: list[Client], norm: float | None = None) -> np.ndarray:
    """``RoundPayer.pay`` with the caps; every update valued at ``norm`` (None: the median)."""
    policy = RewardPolicy(revenue_share=0.1)
    payer = RoundPayer(r.evaluate, Ledger(":memory:"), policy, "exact", norm=norm)
    accounts = [f"c{i}" for i in range(len(clients))]
    ups = [{"w": u} for u, _, _ in clients]
    claims, caps = [c for _, c, _ in clients], [k for _, _, k in clients]
    return payer.pay(1, {"w": np.zeros(D)}, accounts, ups, claims, REVENUE, caps).tokens


RULES = {
    "before": pay_before,
    "after, median norm": pay_after,
    f"after, norm {SET_NORM:g}": lambda r, clients: pay_after(r, clients, SET_NORM),
}


def sybil(r: Round, k: int) -> list[Client]:
    X, y = r.data[0]
    parts = [(local_update(X[j::k], y[j::k]), len(y[j::k]), len(y[j::k])) for j in range(k)]
    return parts + r.clients[1:]


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (0.0 if a == 0 else float("inf"))


Scenario = Callable[[Round, Callable[[Round, list[Client]], np.ndarray]], dict[str, float]]


def scenarios() -> dict[str, Scenario]:
    """Name -> (round, pay rule) -> the ratios it reports."""

    def sybils(k: int) -> Scenario:
        return lambda r, pay: {"gamer": ratio(pay(r, sybil(r, k))[:k].sum(), pay(r, r.clients)[0])}

    def scaler(f: float) -> Scenario:
        def run(r: Round, pay: Callable) -> dict[str, float]:
            u, c, cap = r.clients[0]
            return {
                "gamer": ratio(pay(r, [(f * u, c, cap), *r.clients[1:]])[0], pay(r, r.clients)[0])
            }

        return run

    def copier(r: Round, pay: Callable) -> dict[str, float]:
        honest = pay(r, r.clients)[1]
        both = pay(r, [*r.clients, (2 * r.clients[1][0], r.n, r.n)])
        return {"gamer": ratio(both[-1], honest), "victim loss": ratio(honest - both[1], honest)}

    def free_rider(r: Round, pay: Callable) -> dict[str, float]:
        honest = pay(r, r.clients)
        return {"gamer": ratio(pay(r, [*r.clients, (np.zeros(D), r.n, r.n)])[-1], honest.mean())}

    def size_liar(r: Round, pay: Callable) -> dict[str, float]:
        honest = pay(r, r.clients)
        u, _, cap = r.clients[0]
        lied = pay(r, [(u, 1e6, cap), *r.clients[1:]])
        others = ratio(lied[1:].sum(), honest[1:].sum())
        return {"gamer": ratio(lied[0], honest[0]), "others' pay": others}

    table = {f"sybil k={k}": sybils(k) for k in (1, 2, 3, 4)}
    table |= {"copier": copier, "scaler x2": scaler(2.0), "scaler x3": scaler(3.0)}
    return table | {"free rider": free_rider, "size liar": size_liar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--honest", type=int, default=5, help="honest clients per round")
    parser.add_argument("--n", type=int, default=40, help="examples per honest client")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rounds = [Round(seed, args.honest, args.n) for seed in range(args.seeds)]
    rows = []
    for name, run in scenarios().items():
        for rule, pay in RULES.items():
            got: dict[str, list[float]] = {}
            for r in rounds:
                for key, value in run(r, pay).items():
                    got.setdefault(key, []).append(value)
            row = {"gamer": name, "rule": rule}
            for key, values in got.items():
                row[f"{key} mean"], row[f"{key} max"] = float(np.mean(values)), max(values)
            rows.append(row)
    columns = ["gamer", "rule", "gamer mean", "gamer max", "victim loss mean", "others' pay mean"]
    print_table(rows, columns)
    note = machine_note(load_before, os.getloadavg())
    print(note)
    path = write_json("incentive_gaming", {"args": vars(args), "rows": rows, "machine": note})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
