"""``fedadagent sweep``: a grid over config keys, each point a normal run, run in parallel.

The sweep folder ``<output_dir>/<name>-sweep-<timestamp>/`` holds ``sweep.json`` (base config,
overrides, grid and the points), one ordinary run folder per point (``<name>-p000-...``), and
``index.csv`` / ``index.json``: point -> grid values -> run folder -> status -> headline
metrics, rewritten as points finish. Every point's config is validated before any run starts,
so a bad grid value fails at once naming the key. Points run in worker processes (spawned,
one run folder each, only paths cross the process boundary); an interrupted sweep leaves its
unfinished points resumable (``fedadagent sweep --resume SWEEP_DIR``).

Baselines: the pseudo grid key ``baseline`` (``--grid baseline=no-federation,count-scorer``)
adds, besides the product of the other keys, one point per named baseline (and per ``seed``
value when seeds are swept): the base config with the baseline's overrides
(:data:`BASELINES`), the other swept keys at their base values (``None`` in the index). A
baseline whose every value is a grid value already, or that changes nothing in the base
config, is refused.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from .config import ConfigError, ExperimentConfig, load_config
from .rundir import (
    CHECKPOINT,
    SUMMARY,
    SWEEP,
    RunFolderError,
    atomic_write,
    create_run_dir,
    make_unique_dir,
    read_run_config,
    write_json,
    write_rows,
)
from .runner import resume_market, run_market

INDEX_CSV, INDEX_JSON = "index.csv", "index.json"
# Headline metrics copied into the index: summary.json's totals, then its top-level numbers.
HEADLINE_TOTALS = ("revenue", "advertiser_surplus", "social_welfare", "user_welfare", "clicks")
HEADLINE = ("ctr", "epsilon_per_agent", "token_gini")
# nested summary.json keys copied into the index: column -> path
HEADLINE_NESTED = {
    "ndcg10": ("quality", "ndcg10"),
    "epsilon_max": ("privacy", "epsilon_max"),
    "tokens_paid": ("tokens", "paid"),
}
_PER_POINT = ("name", "output_dir")  # set by the sweep for every point
BASELINE = "baseline"  # the pseudo grid key of baseline points
BASELINES: dict[str, dict[str, Any]] = {
    "no-gossip": {"social.gossip_rounds": 0},
    "no-federation": {"federated.every": 0},
    "count-scorer": {"agents.scorer": "category", "federated.every": 0},
    "no-dp": {
        "federated.noise_multiplier": 0.0,
        "social.trend_private": False,
        "privacy.epsilon_budget": math.inf,
    },
}


def _load(
    config: Path | None, overrides: dict[str, Any], where: dict[str, Any]
) -> ExperimentConfig:
    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        raise ConfigError(f"grid point {where}: {exc}") from None


def _baseline_points(
    config: Path | None, overrides: dict[str, Any], grid: dict[str, list[Any]]
) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """One point per baseline named in ``grid["baseline"]`` and per swept seed."""
    points = []
    for name in grid.get(BASELINE, []):
        if name not in BASELINES:
            raise ConfigError(
                f"baseline {name!r} is unknown; allowed: {', '.join(sorted(BASELINES))}"
            )
        changes = BASELINES[name]
        if all(v in grid.get(k, []) for k, v in changes.items()):
            raise ConfigError(
                f"baseline {name!r} sets {changes}, values the grid sweeps already: "
                "those grid points are the baseline"
            )
        for seed in grid.get("seed", [None]):
            values = {BASELINE: name} | ({} if seed is None else {"seed": seed})
            base = overrides if seed is None else overrides | {"seed": seed}
            cfg = _load(config, base | changes, values)
            if cfg == _load(config, base, values):
                raise ConfigError(
                    f"baseline {name!r} changes nothing here ({changes} are the base config's "
                    "values already)"
                )
            points.append((values, cfg))
    return points


def plan_points(
    config: Path | None, overrides: dict[str, Any], grid: dict[str, list[Any]]
) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """Every grid point (product of the grid's values, keys in the given order), then the
    baseline points (module docstring), each with its validated config; raises ConfigError
    naming the point and key of the first bad one."""
    if not grid:
        raise ConfigError("a sweep needs at least one --grid key=v1,v2,...")
    for key in grid:
        if key in _PER_POINT:
            raise ConfigError(f"grid key {key!r} is set by the sweep for each point")
        if key in overrides:
            raise ConfigError(f"key {key!r} is both overridden (-c) and swept (--grid)")
    axes = {k: v for k, v in grid.items() if k != BASELINE}
    points = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo, strict=True))
        points.append((values, _load(config, {**overrides, **values}, values)))
    return points + _baseline_points(config, overrides, grid)


def create_sweep(
    config: Path | None, overrides: dict[str, Any], grid: dict[str, list[Any]]
) -> Path:
    """Validate every point, then make the sweep folder with one fresh run folder per point."""
    points = plan_points(config, overrides, grid)
    base = points[0][1]
    sweep = make_unique_dir(Path(base.output_dir), f"{base.name[:50]}-sweep")
    rows = []
    for i, (values, cfg) in enumerate(points):
        name = f"{cfg.name[:50]}-p{i:03d}"
        point_cfg = cfg.model_copy(update={"name": name, "output_dir": str(sweep)})
        run = create_run_dir(point_cfg, sweep)
        rows.append({"point": i, "values": values, "run_dir": run.name})
    plan = {
        "config": None if config is None else str(config),
        "overrides": overrides,
        "grid": grid,
        "keys": list(grid),  # the grid's order (JSON objects are written with sorted keys)
        "baselines": {b: BASELINES[b] for b in grid.get(BASELINE, [])},
        "points": rows,
    }
    write_json(sweep / SWEEP, plan)
    write_index(sweep)
    return sweep


def _plan(sweep: Path) -> dict[str, Any]:
    path = sweep / SWEEP
    if not path.is_file():
        raise RunFolderError(f"{sweep} is not a sweep folder: it has no {SWEEP}")
    return json.loads(path.read_text())


def point_status(run: Path) -> str:
    """``done`` (summary.json), ``interrupted`` (a checkpoint), else ``pending``."""
    if (run / SUMMARY).is_file():
        return "done"
    return "interrupted" if (run / CHECKPOINT).is_file() else "pending"


def write_index(sweep: Path, errors: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Rewrite ``index.csv`` and ``index.json`` from the point folders; returns the rows."""
    plan, errors = _plan(sweep), errors or {}
    rows = []
    for p in plan["points"]:
        run = sweep / p["run_dir"]
        status = "failed" if p["point"] in errors else point_status(run)
        row: dict[str, Any] = {"point": p["point"]}
        row |= {key: p["values"].get(key) for key in plan["keys"]}
        row["run_dir"] = p["run_dir"]
        row["status"] = status
        summary = json.loads((run / SUMMARY).read_text()) if status == "done" else None
        for key in HEADLINE_TOTALS:
            row[key] = summary["totals"][key] if summary else None
        for key in HEADLINE:
            row[key] = summary[key] if summary else None
        for key, (section, name) in HEADLINE_NESTED.items():
            row[key] = summary.get(section, {}).get(name) if summary else None
        row["error"] = errors.get(p["point"], "")
        rows.append(row)
    atomic_write(sweep / INDEX_JSON, json.dumps(rows, indent=2) + "\n")
    flat = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
    write_rows(sweep / INDEX_CSV, flat)
    return rows


def run_point(run_dir: str) -> str:
    """Worker: run (or resume) the point in ``run_dir``; returns its final status."""
    run = Path(run_dir)
    status = point_status(run)
    if status == "interrupted":
        resume_market(run)
    elif status == "pending":
        run_market(read_run_config(run), run)
    return "done"


def run_sweep(
    sweep: Path, *, workers: int = 1, on_point: Callable[[int, str], None] | None = None
) -> list[dict[str, Any]]:
    """Run every point of ``sweep`` not done yet in ``workers`` spawned processes.

    A point that raises is recorded as ``failed`` (its message in the index) and the others go
    on; ``on_point(point, status)`` is called as each one ends. Returns the index rows.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    todo = [p for p in _plan(sweep)["points"] if point_status(sweep / p["run_dir"]) != "done"]
    errors: dict[int, str] = {}
    queue = iter(todo)
    ctx = multiprocessing.get_context("spawn")  # safe with threads, same on every OS
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # At most one point per worker is handed out: the executor would queue more, and a
        # queued point would still start after Ctrl-C.
        running: dict[Future[str], int] = {}

        def submit_next() -> None:
            p = next(queue, None)
            if p is not None:
                running[pool.submit(run_point, str(sweep / p["run_dir"]))] = p["point"]

        for _ in range(workers):
            submit_next()
        try:
            while running:
                fut = next(as_completed(running))
                point = running.pop(fut)
                try:
                    status = fut.result()
                except Exception as exc:  # one bad point must not stop the sweep
                    errors[point] = f"{type(exc).__name__}: {exc}"
                    status = "failed"
                write_index(sweep, errors)
                if on_point is not None:
                    on_point(point, status)
                submit_next()
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            write_index(sweep, errors)
            raise
    return write_index(sweep, errors)
