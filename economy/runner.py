"""Run the market into a run folder, checkpointing as it goes; resume an interrupted run.

A run folder gets ``config.toml`` and ``graph.npz`` at the start, ``checkpoint.pkl`` before
the first step and after every ``checkpoint_every`` steps, ``metrics.csv`` when the run stops
(all of it, or the finished steps of an interrupted run), and ``summary.json`` only when every
step has run (the checkpoint is then removed). Resuming an interrupted run gives the same
``summary.json`` and ledger as an uninterrupted one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .market import MarketState, run_steps, start_market, summarize
from .rundir import (
    CHECKPOINT,
    GRAPH,
    LEDGER,
    METRICS,
    SUMMARY,
    atomic_write,
    create_run_dir,
    read_run_config,
    write_json,
    write_rows,
)
from .world import World

if TYPE_CHECKING:
    from .federated import FlowerLink

OnStep = Callable[[MarketState], None]


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
    if cfg.federated.every and cfg.federated.engine == "deployment":
        from .flower_app import submit

        submit(run, cfg.federated.federation)
        return run
    return continue_run(run, open_run(run), on_step=on_step, checkpoint_every=checkpoint_every)


def resume_market(
    run_dir: str | Path, *, on_step: OnStep | None = None, checkpoint_every: int = 1
) -> Path:
    """Continue an interrupted run from its checkpoint (RunFolderError if there is none)."""
    run = Path(run_dir)
    state = load_checkpoint(run)
    if state.fed is not None and state.cfg.federated.engine == "deployment":
        from .flower_app import submit

        state.close()
        submit(run, state.cfg.federated.federation)
        return run
    return continue_run(run, state, on_step=on_step, checkpoint_every=checkpoint_every)


def open_run(run: Path) -> MarketState:
    """The market of ``run``: from its checkpoint, or started from its config (the graph and
    a first checkpoint written)."""
    if (run / CHECKPOINT).is_file():
        return load_checkpoint(run)
    state = start_market(read_run_config(run), run / LEDGER)
    save_graph(state.world, run / GRAPH)
    save_checkpoint(state, run)
    return state


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
        if on_step is not None:
            on_step(s)

    try:
        try:
            run_steps(state, after_step, link)
        finally:  # also on Ctrl-C: the finished steps' metrics are kept for a look or a report
            write_rows(run / METRICS, [asdict(m) for m in state.metrics])
        write_json(run / SUMMARY, summarize(state.cfg, state.metrics, state.fed))
    finally:
        state.close()
    (run / CHECKPOINT).unlink(missing_ok=True)
