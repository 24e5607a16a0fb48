"""Run folders: ``<output_dir>/<name>-<timestamp>/`` with the resolved config and results.

Files are written atomically (temp file + rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from .config import ExperimentConfig


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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_run_dir(cfg: ExperimentConfig, root: str | Path | None = None) -> Path:
    """Make a fresh run folder and write ``config.toml`` (the full resolved config) into it."""
    base = Path(root if root is not None else cfg.output_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = base / f"{cfg.name}-{stamp}"
    suffix = 1
    while run.exists():
        suffix += 1
        run = base / f"{cfg.name}-{stamp}-{suffix}"
    run.mkdir(parents=True)
    atomic_write(run / "config.toml", tomli_w.dumps(cfg.model_dump(mode="json")))
    return run


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document atomically (sorted keys, so equal results give equal files)."""
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
