"""Shared by the examples/repro_*.py scripts: run labelled studies, print a table, write JSON.

Each script lists studies ``(label, bidder factories, ArenaConfig)``; every study is summarised
per repetition by ``auction.arena_metrics`` and reported as mean with a 95% confidence interval
over repetitions. The table also shows the machine load and the date, and the JSON under
benchmarks/results/ keeps every number with the configuration that produced it.

Every script's ``main(argv)`` takes its command-line arguments as a list and returns what it
wrote, so tests/auction/test_auction_repro_examples.py runs each one at a tiny size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from auction import ArenaConfig, arena_metrics, run_arena
from auction.bidders import LearnerFactory
from benchmarks._report import print_table, write_json

Study = tuple[str, Sequence[LearnerFactory], ArenaConfig]
COLUMNS = (
    "winning_bid",
    "bid_ratio",
    "revenue_ratio",
    "collusion_index",
    "surplus",
    "converged_at",
)


def parser(doc: str, *, rounds: int, repetitions: int) -> argparse.ArgumentParser:
    """The options every study shares: ``--rounds``, ``--repetitions``, ``--seed``."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--rounds", type=int, default=rounds, help="auctions per repetition")
    p.add_argument("--repetitions", type=int, default=repetitions, help="independent runs")
    p.add_argument("--seed", type=int, default=0)
    return p


def fmt(ci: dict[str, float]) -> str:
    """``mean [lo, hi]`` with three significant digits."""
    return f"{ci['mean']:.3g} [{ci['lo']:.3g}, {ci['hi']:.3g}]"


def config_dict(cfg: ArenaConfig) -> dict[str, Any]:
    """The study's configuration as JSON-friendly values (callables by name)."""
    out = {}
    for k, v in vars(cfg).items():
        if callable(v):
            v = getattr(v, "__name__", repr(v))
        elif hasattr(v, "tolist"):
            v = v.tolist()
        out[k] = v
    return out


def run_studies(name: str, studies: Sequence[Study], extra: dict[str, Any] | None = None) -> dict:
    """Run every study, print the table (+ load and date), write benchmarks/results/NAME.json."""
    rows, records = [], []
    for label, bidders, cfg in studies:
        start = time.perf_counter()
        summary = arena_metrics(run_arena(bidders, cfg)).summary()
        seconds = time.perf_counter() - start
        rows.append({"study": label, **{c: fmt(summary[c]) for c in COLUMNS}, "s": seconds})
        records.append(
            {"study": label, "config": config_dict(cfg), "metrics": summary, "seconds": seconds}
        )
        print(f"  done {label} in {seconds:.0f} s", flush=True)
    return report(name, rows, ["study", *COLUMNS, "s"], {"studies": records, **(extra or {})})


def report(name: str, rows: list[dict], columns: list[str], payload: dict[str, Any]) -> dict:
    """Print ``rows`` with the load and the date, and write them to benchmarks/results/NAME.json."""
    load = os.getloadavg()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"\n{name}  ({when}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        "mean [95% CI] over repetitions)"
    )
    print_table(rows, columns)
    payload = {"rows": rows, "load": load, "command": " ".join(sys.argv), **payload}
    print(f"wrote {write_json(name, payload)}")
    return payload
