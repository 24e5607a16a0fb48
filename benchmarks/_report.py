"""Shared output of the benchmark scripts: a plain-text table and a JSON file."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print ``rows`` as an aligned table with the given column order."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def side_by_side(
    name: str,
    run: Callable[[], list[dict[str, Any]]],
    note: str,
    checks: Callable[[list[dict[str, Any]]], dict[str, bool]],
    **meta: Any,
) -> list[dict[str, Any]]:
    """Run a project-vs-peer benchmark between two load readings, print its table, when and
    under what load it ran (+ ``note``), its ``checks`` of the rows, and write it as JSON."""
    load_before = os.getloadavg()
    rows = run()
    load = os.getloadavg()
    print_table(rows, list(rows[0]))
    print(f"{machine_note(load_before, load)}; {note}")
    verdict = checks(rows)
    print(verdict)
    payload = {**meta, "rows": rows, "load_before": load_before, "load_after": load, **verdict}
    print(f"wrote {write_json(name, payload)}")
    return rows


def machine_note(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    """When and under what load a benchmark ran: UTC time, CPUs, load averages before/after."""
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; load "
        f"average (1, 5, 15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{' '.join(f'{x:.2f}' for x in load_after)}"
    )


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically, with machine facts attached."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, path)
    return path
