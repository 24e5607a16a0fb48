"""What an agent's released decisions reveal about its private context, measured by attacks.

Issue 13, item 3. An exchange (the attacker) sees, for each of a user's ad decisions, the
candidate ads and their bids (public), the winner and the per-click price. From ``T`` decisions
of one user it estimates the user's private context vector ``c`` (``agents.scoring``: the
predicted CTR is ``sigmoid(scale <c * g, A_j> + bias)`` over the ads' embeddings ``A_j``) and
tries to re-identify the user among all users by cosine to their true context vectors (a
worst case: the attacker holds everyone's profile as auxiliary data).

Attacks (each a least-squares or maximum-likelihood fit over the public ad embeddings):

- ``explanation`` (what left the device before issue 13): least squares of the released
  predicted CTR's logit on ``[A_w, 1]``; no longer released, shown as the reference;
- ``price``: second price with quality scores charges ``p = b_2 q_2 / q_w``, so
  ``log(p / b_2) = log q_2 - log q_w``: least squares on ``A_2 - A_w``;
- ``choice``: conditional logit of the winner over the candidates (features ``A_j`` and
  ``log b_j``), fitted by L-BFGS with a small L2 penalty.

``noisy-max``: the device chooses by report-noisy-max (``agents.privacy.report_noisy_max``,
the exponential mechanism on ``b_j q_j`` with sensitivity ``max_j b_j``, ``epsilon``-DP per
decision since ``q`` is in [0, 1]) and bills the posted price ``b_w x price_factor``
(public: no quality in it), so only the choice is released; the table shows the choice
attack's success and the relevance cost (mean predicted CTR of the chosen ad relative to the
argmax choice) next to the epsilon per decision and composed over ``T`` decisions
(``agents.UserAccountant``, PLD).

    bash .ci/env python benchmarks/privacy_attacks.py [--quick] [--model minilm]

Numbers: the median over target users of the cosine to the true context and the share of
targets ranked first among all users (re-identification), at T = 50, 450, 5,000; both in the
span of the centred ad embeddings (see :func:`identifiable`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.accountant import UserAccountant, pure
from agents.privacy import report_noisy_max
from agents.scoring import logits
from benchmarks._report import side_by_side
from economy.config import parse_config
from economy.lm_agents import LMScorer
from economy.seeding import RunSeeds
from economy.world import make_world

CANDIDATES = 10  # ads per decision
PRICE_FACTOR = 0.05  # posted price per click under noisy-max, x the winner's bid


def profiles(model: str, users: int, ads: int, seed: int):
    """(C (users, d) true context vectors, A (ads, d) ad embeddings, head state)."""
    cfg = parse_config(
        {
            "seed": seed,
            "market": {"users": users, "advertisers": ads},
            "agents": {"model": model},
            "federated": {"every": 0},
        }
    )
    lm = LMScorer(make_world(cfg, RunSeeds(seed)), cfg.agents)
    state = lm.agents[0].state()
    ad_emb = lm.backbone.embed(lm.ads)
    # the evaluator reads each agent's private context vector (the attack's target)
    ctx = np.stack([a._context_parts()[3] for a in lm.agents])
    return ctx.astype(np.float64), ad_emb.astype(np.float64), state


def decisions(c: np.ndarray, A: np.ndarray, state: dict, T: int, rng, epsilon: float | None):
    """T decisions of one user: (candidates (T, K), bids (T, K), winner index (T,), price (T,),
    the winner's predicted CTR (T,), relevance of the choice / of the argmax choice)."""
    cand = np.stack([rng.choice(len(A), CANDIDATES, replace=False) for _ in range(T)])
    bids = rng.lognormal(0.0, 0.5, (T, CANDIDATES))
    q = 1 / (1 + np.exp(-logits(c.astype(np.float32), A[cand.ravel()].astype(np.float32), state)))
    q = q.reshape(T, CANDIDATES).astype(np.float64)
    score = bids * q
    best = score.argmax(axis=1)
    rows = np.arange(T)
    if epsilon is None:
        win = best
        second = np.argsort(score, axis=1)[:, -2]
        price = bids[rows, second] * q[rows, second] / q[rows, win]
    else:
        win = report_noisy_max(score, epsilon, bids.max(axis=1), rng)
        second, price = None, bids[rows, win] * PRICE_FACTOR
    relevance = q[rows, win].mean() / q[rows, best].mean()
    return cand, bids, win, second, price, q[rows, win], relevance


def fit_explanation(A, cand, win, ctr) -> np.ndarray:
    X = np.c_[A[cand[np.arange(len(win)), win]], np.ones(len(win))]
    y = np.log(ctr) - np.log1p(-ctr)
    return np.linalg.lstsq(X, y, rcond=None)[0][:-1]


def fit_price(A, cand, bids, win, second, price) -> np.ndarray:
    rows = np.arange(len(win))
    X = A[cand[rows, second]] - A[cand[rows, win]]
    y = np.log(price / bids[rows, second])
    return np.linalg.lstsq(X, y, rcond=None)[0]


def fit_choice(A, cand, bids, win, l2: float = 1e-3) -> np.ndarray:
    """Conditional logit: P(j | candidates) ~ exp(<theta, A_j> + beta log b_j)."""
    feats = torch.tensor(A[cand], dtype=torch.float64)  # (T, K, d)
    logb = torch.tensor(np.log(bids), dtype=torch.float64)
    target = torch.tensor(win)
    theta = torch.zeros(A.shape[1], dtype=torch.float64, requires_grad=True)
    beta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta, beta], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        u = feats @ theta + beta * logb
        loss = torch.nn.functional.cross_entropy(u, target) + l2 * theta.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return theta.detach().numpy()


def identifiable(A: np.ndarray, share: float = 0.99) -> np.ndarray:
    """(d, d) projection onto the span of the centred ad embeddings (the top principal
    directions holding ``share`` of their variance). A decision compares ads, so only a
    context's part in that span changes a choice or a price ratio: the rest (the ads' common
    component, directions no ad varies in) no attack can see and no decision depends on.
    Cosines and ranks are taken in that span."""
    _, sv, vt = np.linalg.svd(A - A.mean(axis=0), full_matrices=False)
    k = int(np.searchsorted(np.cumsum(sv**2) / np.sum(sv**2), share)) + 1
    return vt[:k].T @ vt[:k]


def score(estimate: np.ndarray, C: np.ndarray, user: int) -> tuple[float, int]:
    """(cosine to the user's true context, its rank among all users by cosine, 1 = first);
    ``C`` already projected (:func:`identifiable`) and scaled by the head's gain."""
    unit = C / np.linalg.norm(C, axis=1, keepdims=True)
    cos = unit @ (estimate / (np.linalg.norm(estimate) + 1e-300))
    return float(cos[user]), int((cos > cos[user]).sum()) + 1


def run(model: str, users: int, ads: int, targets: int, sizes: list[int], eps_list, seed: int):
    C, A, state = profiles(model, users, ads, seed)
    project = identifiable(A)
    target = (C * state["head.gain"]) @ project
    rng = np.random.default_rng(seed)
    chosen = rng.choice(users, targets, replace=False)
    rows = []
    for epsilon in [None, *eps_list]:
        for T in sizes:
            found: dict[str, list[tuple[float, int]]] = {}
            relevance = []
            for u in chosen:
                cand, bids, win, second, price, ctr, rel = decisions(
                    C[u], A, state, T, np.random.default_rng([seed, int(u), T]), epsilon
                )
                relevance.append(rel)
                est = fit_choice(A, cand, bids, win)
                found.setdefault("choice", []).append(score(est @ project, target, u))
                if epsilon is None:
                    est = fit_explanation(A, cand, win, ctr)
                    found.setdefault("explanation", []).append(score(est @ project, target, u))
                    est = fit_price(A, cand, bids, win, second, price)
                    found.setdefault("price", []).append(score(est @ project, target, u))
            if epsilon is None:
                eps_total = float("inf")
            else:
                acc = UserAccountant(1)
                acc.charge([0], pure(epsilon, "noisy max"), times=T)
                eps_total = float(acc.epsilons()[0])
            for attack, res in found.items():
                cos = np.array([r[0] for r in res])
                rank = np.array([r[1] for r in res])
                rows.append(
                    {
                        "release": "winner + price" if epsilon is None else "noisy-max winner",
                        "attack": attack + (" (not released)" if attack == "explanation" else ""),
                        "eps/decision": "inf" if epsilon is None else epsilon,
                        "T": T,
                        "eps_total": eps_total,
                        "cosine_median": float(np.median(cos)),
                        "reidentified": float((rank == 1).mean()),
                        "rank_median": float(np.median(rank)),
                        "relevance": float(np.mean(relevance)),
                    }
                )
            print(f"  done: epsilon {epsilon}, T {T}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny-encoder, fewer users")
    parser.add_argument("--model", default=None, help="minilm (default) or tiny-encoder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = args.model or ("tiny-encoder" if args.quick else "minilm")
    users, ads, targets = (100, 100, 5) if args.quick else (300, 200, 20)
    sizes = [50, 450] if args.quick else [50, 450, 5000]
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    side_by_side(
        "privacy_attacks",
        lambda: run(model, users, ads, targets, sizes, [0.5, 2.0, 8.0], args.seed),
        f"{model}, {users} users, {ads} ads, {CANDIDATES} candidates per decision, "
        f"{targets} target users, seed {args.seed}",
        lambda rows: {},
        model=model,
        users=users,
        ads=ads,
        targets=targets,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
