"""Checkpoints of a running market, so an interrupted run (Ctrl-C, a crash) can be resumed.

``checkpoint.pkl`` in the run folder is one atomically written file (temp file + rename): the
pickled :class:`economy.market.MarketState` after a finished step (bidders, the devices' CTR
estimates, the LM agents' contexts and global adapter + head, the federation's tokens and per-
device epsilon, every random generator's state, the metrics so far) and a byte image of the
ledger database at that moment. Two objects are not pickled: the world, which is rebuilt from
the run's config and seed (deterministic), and the ledger connection, which is reopened on the
restored database. Restoring the ledger image drops entries written by a step that did not
finish, so a resumed run pays every reward once.
"""

from __future__ import annotations

import io
import pickle
import sqlite3
from pathlib import Path
from typing import Any

from incentives import Ledger

from .market import MarketState, start_market
from .rundir import CHECKPOINT, LEDGER, SUMMARY, RunFolderError, atomic_write, read_run_config

FORMAT = 1  # bump when the pickled layout changes; older checkpoints are refused


class _Pickler(pickle.Pickler):
    """Pickles a state, leaving out its world and ledger (kept by reference)."""

    def __init__(self, file: io.BytesIO, world: object) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._world = world

    def persistent_id(self, obj: object) -> str | None:
        if obj is self._world:
            return "world"
        if isinstance(obj, Ledger):
            return "ledger"
        return None


class _Unpickler(pickle.Unpickler):
    """Unpickles a state onto a freshly built world and the reopened ledger."""

    def __init__(self, file: io.BytesIO, world: object, ledger: Ledger | None) -> None:
        super().__init__(file)
        self._refs = {"world": world, "ledger": ledger}

    def persistent_load(self, pid: Any) -> object:
        if pid not in self._refs or self._refs[pid] is None:
            raise pickle.UnpicklingError(f"checkpoint refers to an unknown object {pid!r}")
        return self._refs[pid]


def _ledger_image(path: Path) -> bytes | None:
    """The ledger database's committed content as bytes (None: no ledger yet)."""
    if not path.is_file():
        return None
    src, mem = sqlite3.connect(path), sqlite3.connect(":memory:")
    try:
        src.backup(mem)
        return mem.serialize()
    finally:
        src.close()
        mem.close()


def save_checkpoint(state: MarketState, run_dir: Path) -> None:
    """Write ``checkpoint.pkl`` for ``state`` (call between steps) atomically."""
    buf = io.BytesIO()
    _Pickler(buf, state.world).dump(state)
    payload = {"format": FORMAT, "state": buf.getvalue(), "ledger": _ledger_image(run_dir / LEDGER)}
    atomic_write(run_dir / CHECKPOINT, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(run_dir: str | Path) -> MarketState:
    """The market state saved in ``run_dir``, its ledger restored to the same moment.

    Raises:
        RunFolderError: ``run_dir`` is not a run folder, is already complete, or has no
            (readable) checkpoint.
    """
    run = Path(run_dir)
    cfg = read_run_config(run)
    if (run / SUMMARY).is_file():
        raise RunFolderError(f"{run} is complete ({SUMMARY} exists): nothing to resume")
    path = run / CHECKPOINT
    if not path.is_file():
        raise RunFolderError(f"{run} has no {CHECKPOINT}: it was not started by `fedadagent run`")
    try:
        payload = pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise RunFolderError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RunFolderError(f"{path} has an unknown checkpoint format (this code reads {FORMAT})")
    ledger_path = run / LEDGER
    for stale in (ledger_path.with_name(LEDGER + "-wal"), ledger_path.with_name(LEDGER + "-shm")):
        stale.unlink(missing_ok=True)  # the image below is the whole committed database
    if payload["ledger"] is None:
        ledger_path.unlink(missing_ok=True)
    else:
        atomic_write(ledger_path, payload["ledger"])
    fresh = start_market(cfg, ledger_path)
    ledger = fresh.fed.ledger if fresh.fed is not None else None
    return _Unpickler(io.BytesIO(payload["state"]), fresh.world, ledger).load()
