"""Run folders: ``<output_dir>/<name>-<timestamp>/`` with the resolved config and results.

Files are written atomically (temp file + rename), so a crash never leaves half a file.
File names of a run folder are the constants below (documented in economy/README.md).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from .config import ConfigError, ExperimentConfig, load_config

CONFIG = "config.toml"  # the full resolved config, seed included
METRICS = "metrics.csv"  # one row per finished step
SUMMARY = "summary.json"  # totals; written only when the run is complete
LEDGER = "ledger.db"  # token rewards (incentives.Ledger)
GRAPH = "graph.npz"  # social graph edges and each user's community, for the report
CHECKPOINT = "checkpoint.pkl"  # resumable market state; removed when the run completes
PLOTS = "plots"  # PNGs of ``fedadagent report``
DEVICES = "devices"  # simulation only: each device's own store (economy.federated)
SWEEP = "sweep.json"  # marks a sweep folder (economy.sweep)


class RunFolderError(ValueError):
    """A folder is not a run folder (or not in the state an operation needs)."""


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_unique_dir(base: Path, name: str) -> Path:
    """Make and return a new folder ``base/<name>-<timestamp>[-<n>]`` (never an existing one)."""
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in range(1, 10_000):
        run = base / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
        try:
            run.mkdir()  # atomic: parallel callers never get the same folder
        except FileExistsError:
            continue
        return run
    raise RunFolderError(f"could not make a new folder for {name!r} under {base}")


def create_run_dir(cfg: ExperimentConfig, root: str | Path | None = None) -> Path:
    """Make a fresh run folder and write ``config.toml`` (the full resolved config) into it."""
    run = make_unique_dir(Path(root if root is not None else cfg.output_dir), cfg.name)
    atomic_write(run / CONFIG, tomli_w.dumps(cfg.model_dump(mode="json")))
    return run


def read_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The resolved config of a run folder; RunFolderError if ``run_dir`` is not one."""
    run = Path(run_dir)
    if not (run / CONFIG).is_file():
        hint = (
            "it is a sweep folder: give one of its run folders (index.csv lists them)"
            if (run / SWEEP).is_file()
            else f"it has no {CONFIG} (run folders are made by `fedadagent run`)"
        )
        raise RunFolderError(f"{run} is not a run folder: {hint}")
    try:
        return load_config(run / CONFIG)
    except ConfigError as exc:
        raise RunFolderError(f"{run / CONFIG} is not a valid config: {exc}") from None


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV atomically, columns in the first row's order (no rows: empty)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document atomically (sorted keys, so equal results give equal files)."""
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
