"""Run the market into a run folder, checkpointing as it goes; resume an interrupted run.

A run folder gets ``config.toml`` and ``graph.npz`` at the start, a checkpoint
(:mod:`economy.checkpoint`) before the first step and after every ``checkpoint_every`` steps,
``metrics.csv`` when the run stops (all of it, or the finished steps of an interrupted run),
``metrics.parquet`` (the same rows, :mod:`economy.results`) then and at every checkpoint,
and ``summary.json`` only when every step has run (the checkpoint is then removed). Resuming an
interrupted run gives the same ``summary.json`` and ledger as an uninterrupted one; a run
stopped before its first checkpoint (it paid nothing yet) starts again from step 0. Temp files
a kill left mid-write are removed first.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from incentives import count_entries

from .checkpoint import NoCheckpointError, load_checkpoint, remove_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .edge.model import write_global_model
from .environment import record_environment, warn_if_changed
from .market import MarketState, run_steps, start_market, summarize
from .progress import phase
from .results import METRICS_PARQUET, write_metrics_parquet
from .rundir import (
    CHECKPOINT,
    GRAPH,
    LEDGER,
    LEDGER_KEY,
    METRICS,
    SUMMARY,
    RunFolderError,
    atomic_write,
    clean_temp,
    create_run_dir,
    read_run_config,
    write_json,
    write_rows,
)
from .world import World

if TYPE_CHECKING:
    from .federated import FlowerLink

OnStep = Callable[[MarketState], None]
log = logging.getLogger(__name__)


def save_graph(world: World, path: Path) -> None:
    """``graph.npz``: ``edges`` (E, 2) int32 user ids and ``community`` (users,) int32."""
    edges = np.array(list(world.graph.edges()), dtype=np.int32).reshape(-1, 2)
    buf = io.BytesIO()
    np.savez_compressed(buf, edges=edges, community=np.asarray(world.community, dtype=np.int32))
    atomic_write(path, buf.getvalue())


def run_market(
    cfg: ExperimentConfig,
    run_dir: Path | None = None,
    *,
    on_step: OnStep | None = None,
    checkpoint_every: int = 1,
) -> Path:
    """Simulate into a new run folder (or the fresh one ``run_dir``, holding only its config).

    With federated rounds (``federated.every > 0``) the market runs inside a Flower ServerApp
    (:mod:`economy.flower_app`): in this process on the Simulation Engine, or submitted to a
    SuperLink (``federated.engine = "deployment"``).

    Args:
        cfg: the resolved config.
        run_dir: a folder made by ``create_run_dir``; default a new one under ``output_dir``.
        on_step: called with the state after each step (and its checkpoint).
        checkpoint_every: steps between checkpoints, >= 1.
    """
    run = create_run_dir(cfg) if run_dir is None else Path(run_dir)
    return _drive(run, cfg, on_step, checkpoint_every)


def resume_market(
    run_dir: str | Path, *, on_step: OnStep | None = None, checkpoint_every: int = 1
) -> Path:
    """Continue an interrupted run from its checkpoint, or start it again from step 0 when it
    stopped before its first one (RunFolderError if it is complete or not a run folder)."""
    run = Path(run_dir)
    cfg = read_run_config(run)
    if _deployed(cfg):  # refuse a complete run or a bad checkpoint here, not on the SuperLink
        with contextlib.suppress(NoCheckpointError):  # the ServerApp starts it from step 0
            load_checkpoint(run).close()
    return _drive(run, cfg, on_step, checkpoint_every)


def _deployed(cfg: ExperimentConfig) -> bool:
    return bool(cfg.federated.every) and cfg.federated.engine == "deployment"


def _drive(run: Path, cfg: ExperimentConfig, on_step: OnStep | None, every: int) -> Path:
    """Run the market of ``run`` here, or submit it to the SuperLink (deployment)."""
    if _deployed(cfg):
        from .flower_app import submit

        submit(run, cfg.federated.federation)
        return run
    return continue_run(run, open_run(run), on_step=on_step, checkpoint_every=every)


def open_run(run: Path) -> MarketState:
    """The market of ``run``: from its checkpoint, or started from its config (the graph and
    a first checkpoint and ``environment.json`` written), temp files of a killed write removed
    first; a checkpoint made in another environment is warned about."""
    clean_temp(run)
    if (run / CHECKPOINT).is_file():
        phase("restoring the checkpoint (loading the agents' model)")
    try:
        state = load_checkpoint(run)
    except NoCheckpointError as exc:
        _restartable(run, exc)
    else:
        warn_if_changed(run, f"the checkpoint of {run}")
        return state
    record_environment(run)
    phase("building the world, loading the agents' model, embedding the ads")
    state = start_market(read_run_config(run), run / LEDGER)
    save_graph(state.world, run / GRAPH)
    save_checkpoint(state, run)
    return state


def _restartable(run: Path, exc: NoCheckpointError) -> None:
    """Clear what a run stopped before its first checkpoint left (it paid nothing yet), or
    refuse when its ledger holds entries: starting again would pay them twice."""
    try:
        paid = count_entries(run / LEDGER)
    except sqlite3.DatabaseError as err:
        raise RunFolderError(f"{exc}, and its {LEDGER} is not a database ({err})") from None
    if paid:
        raise RunFolderError(
            f"{exc}, yet its {LEDGER} holds entries: it cannot start again without paying "
            "them twice; start a new run"
        ) from None
    started = [run / name for name in (GRAPH, LEDGER, LEDGER_KEY, METRICS, METRICS_PARQUET)]
    if any(path.exists() for path in started):
        log.warning("%s; starting it again from step 0", exc)
    for path in [*started, run / (LEDGER + "-wal"), run / (LEDGER + "-shm")]:
        path.unlink(missing_ok=True)


def continue_run(
    run: Path,
    state: MarketState,
    *,
    on_step: OnStep | None = None,
    checkpoint_every: int = 1,
    link: FlowerLink | None = None,
) -> Path:
    """Run ``state`` to its last step in ``run``: over ``link``, or in a Simulation Engine
    started here when the market has federated rounds and no federation is given."""
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 step, got {checkpoint_every}")
    if state.fed is not None and link is None:
        from .flower_app import simulate

        phase("starting Flower's Simulation Engine (Ray), one node per user")
        simulate(state, run, lambda st, lk: _steps(run, st, on_step, checkpoint_every, lk))
    else:
        _steps(run, state, on_step, checkpoint_every, link)
    return run


def _steps(
    run: Path, state: MarketState, on_step: OnStep | None, every: int, link: FlowerLink | None
) -> None:
    def after_step(s: MarketState) -> None:
        if s.step % every == 0 and not s.done:
            save_checkpoint(s, run)
            write_metrics_parquet(run / METRICS_PARQUET, [asdict(m) for m in s.metrics])
        if on_step is not None:
            on_step(s)

    try:
        try:
            run_steps(state, after_step, link)
        finally:  # also on Ctrl-C: the finished steps' metrics are kept for a look or a report
            rows = [asdict(m) for m in state.metrics]
            write_rows(run / METRICS, rows)
            write_metrics_parquet(run / METRICS_PARQUET, rows)
        if state.lm is not None:  # the global adapter + head, for `fedadagent serve`
            write_global_model(run, state.lm.agents[0].state())
        write_json(run / SUMMARY, summarize(state.cfg, state.metrics, state.fed, state.privacy))
    finally:
        state.close()
    remove_checkpoint(run)
