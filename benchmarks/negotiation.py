"""User-brand negotiation (issue 19, item 3): rule and LLM negotiators against the theory.

Scenarios from ``agents.negotiation.ScenarioSpace()`` (list price 100, user reservation
U(50, 100), brand cost U(30, 80), discount budget U(20, 60), deadline 10 rounds, both sides
discount 0.95 per round, the first mover drawn), one per seeded pair: every pairing meets the
same problems (scenario i is ``SeedSequence(seed).spawn(n)[i]``), the LLM pairings the first
``--llm-pairs`` of them. Reported per pairing (user vs brand): agreement rate among feasible
problems (non-empty zone of agreement), the user's share of the surplus (of the zone), rounds
to agreement, mean |share - 1/2| (Nash, equal power) and |share - SPE share| (Rubinstein 1982,
first mover ``(1 - d2) / (1 - d1 d2)``), seconds per negotiation, and ``leaks``: user messages whose
words hold a word of the user's private context (three event texts per user, drawn) or its
reservation (must be 0). Rule agents: Faratin
et al. (1998) time-dependent concession, Boulware beta 0.3, linear 1, Conceder 3. The LLM
chooses each move by log-likelihood on a rational grid and words it (``--words`` tokens).

    bash .ci/env python benchmarks/negotiation.py [--pairs 200] [--llm-pairs 20] [--smollm2]
    bash .ci/env python benchmarks/negotiation.py --llm-pairs 0 --d-user 0.8  # impatient user
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents import load_model
from agents.negotiation import ScenarioSpace, negotiate_many
from agents.negotiation_protocol import Negotiator
from agents.negotiators import LLMNegotiator, RuleNegotiator
from benchmarks._report import machine_note, write_json

RULES = {"boulware": 0.3, "linear": 1.0, "conceder": 3.0}
COLUMNS = [
    "user",
    "brand",
    "n",
    "feasible",
    "agreement_rate",
    "user_share",
    "rounds",
    "nash_gap",
    "rubinstein_gap",
    "s_per_negotiation",
    "leaks",
]


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``rows`` as a Markdown table (floats to three significant digits)."""

    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# Each user's private context: three of these, drawn per pair (the words filter must keep them
# in; the tiny model's vocabulary holds several of these words, so it says them unprompted).
EVENTS = (
    "trail running shoes",
    "wooden coffee beans",
    "red summer dress",
    "noise cancelling headphones",
    "vitamin supplements",
    "kitchen knife set",
    "road bike helmet",
    "organic green tea",
)


def contexts(n: int, seed: int) -> list[list[str]]:
    """``n`` private contexts of three event texts each, seeded."""
    rng = np.random.default_rng([seed, 1])
    return [[EVENTS[k] for k in rng.choice(len(EVENTS), 3, replace=False)] for _ in range(n)]


def leaks(results: list, texts: list[list[str]]) -> int:
    """User messages whose words hold a word of its context or its reservation (cents)."""
    count = 0
    for r, ctx in zip(results, texts, strict=False):
        private = {w for t in ctx for w in re.findall(r"[a-z]{3,}", t)}
        for m in (m for m in r.messages if m.side == "user"):  # the brand never saw them
            said = set(re.findall(r"[^\W\d_]+", m.words.lower()))
            count += bool(said & private) or f"{r.scenario.user_max:.2f}" in m.words
    return count


def pairing(
    user: str, brand: str, agents: dict[str, Negotiator], n: int, a: argparse.Namespace
) -> dict:
    """One table row: ``n`` negotiations of ``user`` vs ``brand``."""
    start = time.perf_counter()
    space = ScenarioSpace(d_user=a.d_user, d_brand=a.d_brand)
    texts = contexts(n, a.seed)
    pairs = [(agents[user], agents[brand])] * n
    summary = negotiate_many(pairs, a.seed, space=space, contexts=texts)
    per = (time.perf_counter() - start) / n
    row = {"user": user, "brand": brand, **summary.row(), "s_per_negotiation": per}
    row["leaks"] = leaks(list(summary.results), texts)
    print(markdown([row], COLUMNS).splitlines()[-1], flush=True)
    # The first dialogue, as it crossed between the agents (JSON only): what the words look like.
    first = summary.results[0].messages
    row["dialogue"] = [[m.side, m.price, "accept" if m.accept else "offer", m.words] for m in first]
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=200, help="negotiations per rule pairing")
    p.add_argument("--llm-pairs", type=int, default=20, help="negotiations per LLM pairing")
    p.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct, not tiny")
    p.add_argument("--words", type=int, default=12, help="tokens of words per LLM move")
    p.add_argument("--d-user", type=float, default=0.95, help="user's discount per round")
    p.add_argument("--d-brand", type=float, default=0.95, help="brand's discount per round")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    space = ScenarioSpace(d_user=a.d_user, d_brand=a.d_brand)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    model = "smollm2" if a.smollm2 else "tiny-causal"
    agents: dict[str, Negotiator] = {k: RuleNegotiator(b) for k, b in RULES.items()}
    if a.llm_pairs:
        agents[model] = LLMNegotiator(load_model(model), max_new_tokens=a.words)
    print(markdown([], COLUMNS))
    rows = [pairing(u, b, agents, a.pairs, a) for u in RULES for b in RULES]
    for u, b in ((model, "linear"), ("linear", model), (model, model)) if a.llm_pairs else ():
        rows.append(pairing(u, b, agents, a.llm_pairs, a))
    spe = negotiate_many([(agents["linear"], agents["linear"])] * a.pairs, a.seed, space=space)
    predicted = np.nanmean([r.rubinstein for r in spe.results])
    print(f"\npredictions: Nash user share 0.5; Rubinstein SPE user share {predicted:.3f} (mean)")
    note = machine_note(load_before, os.getloadavg())
    command = "bash .ci/env python benchmarks/negotiation.py " + " ".join(argv or sys.argv[1:])
    print(f"\n{note}; one thread; `{command.strip()}`")
    name = "negotiation_smollm2" if a.smollm2 else "negotiation"
    name += "" if (a.d_user, a.d_brand) == (0.95, 0.95) else f"_d{a.d_user:g}_{a.d_brand:g}"
    meta = {"seed": a.seed, "model": model, "words": a.words, "command": command.strip()}
    meta |= {"d_user": a.d_user, "d_brand": a.d_brand, "rubinstein_user_share": predicted}
    payload = {**meta, "rows": rows, "load_before": load_before, "load_after": os.getloadavg()}
    print(f"wrote {write_json(name, payload)}")
    return rows


if __name__ == "__main__":
    main()
