"""The model an edge node serves: the global adapter + head a run trained, or the default.

A finished run with language-model agents leaves ``global_model.npz`` (:data:`GLOBAL_MODEL`,
written by :func:`write_global_model` when the run completes): the adapter + head every agent
held at the end, fp32 arrays read back with ``allow_pickle=False`` and checked against the
model's shapes. A run without federated rounds never changes the initial state, so it needs no
such file; a run with rounds but without the file (interrupted, or older) is refused with a
message, never served with an untrained model in its name.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents import Backbone, enable_lora, load_model
from agents.lora import (
    activate,
    adapter_parameters,
    check_state,
    initial_adapter,
    state_version,
)
from agents.scoring import HEAD_KEYS, initial_head

from ..config import ExperimentConfig, load_config
from ..rundir import SUMMARY, atomic_write, read_run_config
from .errors import EdgeError

GLOBAL_MODEL = "global_model.npz"  # in a run folder: the final global adapter + head


@dataclass(frozen=True)
class ServedModel:
    """What a node scores with.

    Attributes:
        backbone: the shared model, LoRA enabled, the served adapter active.
        state: adapter + head (fp32 arrays by name), read-only.
        version: content hash of the adapter (the embedding cache's key).
        source: where the state came from (a run folder, or ``"embedded default"``).
        epsilon: per-user epsilon the state's training spent (the run's
            ``privacy.epsilon_max``), 0 for an untrained state, None when unknown.
    """

    backbone: Backbone
    state: dict[str, np.ndarray]
    version: str
    source: str
    epsilon: float | None


def write_global_model(run: Path, state: dict[str, np.ndarray]) -> Path:
    """Write ``state`` (adapter + head) as ``run/global_model.npz`` atomically; its path."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, dtype=np.float32) for k, v in state.items()})
    path = Path(run) / GLOBAL_MODEL
    atomic_write(path, buf.getvalue())
    return path


def _read_state(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k].astype(np.float32) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise EdgeError(f"{path} is not a readable adapter + head file: {exc}") from None


def _run_epsilon(run: Path) -> float | None:
    try:
        summary = json.loads((run / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    eps = summary.get("privacy", {}).get("epsilon_max", summary.get("privacy.epsilon_max"))
    return float(eps) if isinstance(eps, int | float) else None


def _backbone(cfg: ExperimentConfig) -> Backbone:
    backbone = load_model(cfg.agents.model, max_length=cfg.agents.max_length)
    enable_lora(backbone, rank=cfg.agents.lora_rank)
    return backbone


def load_served_model(run_dir: Path | None) -> tuple[ServedModel, ExperimentConfig]:
    """The model and config a node serves for ``run_dir`` (None: the embedded defaults).

    Raises:
        RunFolderError: ``run_dir`` is not a run folder.
        EdgeError: the run does not score with a language model, or trained one whose final
            adapter + head it did not keep, or that file is unreadable or of other shapes.
    """
    if run_dir is None:
        cfg = load_config(None)
        backbone = _backbone(cfg)
        state = {**initial_adapter(backbone), **initial_head(backbone.dim)}
        return _served(backbone, state, "embedded default", 0.0), cfg
    run = Path(run_dir)
    cfg = read_run_config(run)
    if cfg.agents.scorer != "lm":
        raise EdgeError(
            f"{run}: agents.scorer is {cfg.agents.scorer!r}; a node serves language-model "
            "agents only (agents.scorer = 'lm')"
        )
    backbone = _backbone(cfg)
    path = run / GLOBAL_MODEL
    if path.is_file():
        state = _read_state(path)
        epsilon = _run_epsilon(run)
    elif cfg.federated.every == 0:  # nothing trained: the initial state is the global one
        state, epsilon = {**initial_adapter(backbone), **initial_head(backbone.dim)}, 0.0
    else:
        raise EdgeError(
            f"{run} has no {GLOBAL_MODEL}: its federated rounds' adapter + head is kept only "
            "when the run completes (resume it with `fedadagent run --resume`)"
        )
    shapes = {n: tuple(p.shape) for n, p in adapter_parameters(backbone).items()}
    shapes.update({k: v.shape for k, v in initial_head(backbone.dim).items()})
    try:
        check_state(state, shapes)
    except ValueError as exc:
        raise EdgeError(f"{path} does not fit {cfg.agents.model!r}: {exc}") from None
    if not all(np.isfinite(v).all() for v in state.values()):
        raise EdgeError(f"{path} holds NaN or infinite weights")
    return _served(backbone, state, str(run), epsilon), cfg


def _served(
    backbone: Backbone, state: dict[str, np.ndarray], source: str, epsilon: float | None
) -> ServedModel:
    adapter = {k: v for k, v in state.items() if k not in HEAD_KEYS}
    version = state_version(adapter)
    activate(backbone, adapter, version)
    for v in state.values():
        v.flags.writeable = False
    if epsilon is not None and not math.isfinite(epsilon):
        epsilon = math.inf
    return ServedModel(backbone, state, version, source, epsilon)
