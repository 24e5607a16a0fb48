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

from .config import ConfigError, ExperimentConfig, clip, load_config

CONFIG = "config.toml"  # the full resolved config, seed included
METRICS = "metrics.csv"  # one row per finished step
SUMMARY = "summary.json"  # totals; written only when the run is complete
LEDGER = "ledger.db"  # token rewards (incentives.Ledger)
GRAPH = "graph.npz"  # social graph edges and each user's community, for the report
CHECKPOINT = "checkpoint.json"  # resumable market state's manifest; removed when complete
LEDGER_KEY = "ledger.key"  # the ledger's HMAC key (mode 0600): private, never share it
ENVIRONMENT = "environment.json"  # Python and package versions the run ran with
PLOTS = "plots"  # PNGs of ``fedadagent report``
RUN_LOG = "run.log"  # the libraries' warnings and log lines, and the run's phases (fedadagent run)
# Private: the devices' own stores (simulation: economy.federated) and the devices' part of
# every checkpoint (history texts, click logs); folder 0700, files 0600. Never share it.
DEVICES = "devices"
PRIVATE_MODE = 0o600
SWEEP = "sweep.json"  # marks a sweep folder (economy.sweep)


class RunFolderError(ValueError):
    """A folder is not a run folder (or not in the state an operation needs)."""


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename.

    ``mode``: the file's permissions (0o644: results are for sharing; ``PRIVATE_MODE`` for a
    user's data). A kill mid-write leaves a ``.<name>.*`` temp file: see :func:`clean_temp`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    how = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, how) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bad_output_dir(base: Path, reason: str) -> RunFolderError:
    return RunFolderError(
        f"output_dir {clip(str(base))}: cannot make a run folder there ({reason}); "
        "give a folder you can write to (output_dir or -o)"
    )


def check_output_dir(base: Path) -> None:
    """Check, making nothing, that run folders can be made under ``base``: its nearest
    existing folder (itself or an ancestor) is a folder this process may write to.

    Raises:
        RunFolderError: naming ``base`` and what is wrong with it.
    """
    existing = base
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _bad_output_dir(base, f"{clip(str(existing))} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _bad_output_dir(base, f"{clip(str(existing))} is not writable")


def make_unique_dir(base: Path, name: str) -> Path:
    """Make and return a new folder ``base/<name>-<timestamp>[-<n>]`` (never an existing one).

    Raises:
        RunFolderError: ``base`` is a file, or cannot be made or written (nothing is made).
    """
    check_output_dir(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in range(1, 10_000):
            run = base / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
            try:
                run.mkdir()  # atomic: parallel callers never get the same folder
            except FileExistsError:
                continue
            return run
    except OSError as exc:  # a race, or a folder that refuses though it looks writable
        raise _bad_output_dir(base, exc.strerror) from None
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


def private_dir(run: Path) -> Path:
    """The run's private folder (``DEVICES``), made with mode 0700 if needed."""
    folder = Path(run) / DEVICES
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def clean_temp(run: Path) -> list[Path]:
    """Remove the temp files a kill mid-write left in ``run`` and its private folder (files
    named ``.<name>.<random>`` by :func:`atomic_write` and ``agents.context``); their paths."""
    run, private = Path(run), Path(run) / DEVICES
    folders = [run]
    if private.is_dir():
        folders += [private, *(p for p in private.rglob("*") if p.is_dir())]
    removed = []
    for folder in folders:
        for path in folder.glob(".*.*"):
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
