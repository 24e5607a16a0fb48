"""A run folder's ledger checked against the head its ``summary.json`` kept.

``ledger.db`` authenticates its own entries and head with the key in ``ledger.key``
(:mod:`incentives.ledger`), but a file truncated, rolled back or replaced by another valid
ledger is caught only by a head kept elsewhere: a complete run keeps it in ``summary.json``
(``ledger.head = "<entries>:<sha256>"``, ``null`` for a run without federated rounds, whose
ledger must then hold nothing). A run not complete yet has no kept head: its ledger's chain
and MACs are checked alone. ``fedadagent ledger verify RUN_DIR`` and ``fedadagent report``
call :func:`verify_run_ledger`; ``--resume`` checks the checkpoint's ledger copy
(:mod:`economy.checkpoint`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from incentives import Verification, verify_ledger
from incentives.ledger import GENESIS

from .rundir import LEDGER, SUMMARY, RunFolderError, read_run_config


@dataclass(frozen=True)
class RunLedger:
    """The check of a run's ledger: ``verification`` and what it was checked against."""

    verification: Verification
    against: str  # e.g. "the head in summary.json (12:ab..)", "its own chain (run not complete)"

    @property
    def ok(self) -> bool:
        return self.verification.ok


def kept_head(run: Path) -> tuple[int, str] | None:
    """The ledger head ``summary.json`` kept (``(0, GENESIS)`` for a run without a ledger);
    None when the run is not complete.

    Raises:
        RunFolderError: ``summary.json`` is unreadable or its ``ledger.head`` malformed.
    """
    path = run / SUMMARY
    if not path.is_file():
        return None
    try:
        head = json.loads(path.read_text())["ledger"]["head"]
        if head is None:
            return (0, GENESIS)
        seq, digest = str(head).split(":")
        return (int(seq), digest)
    except (ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(
            f"{path} holds no valid ledger.head ('<entries>:<sha256>'): {exc}"
        ) from None


def verify_run_ledger(run_dir: str | Path) -> RunLedger:
    """Check ``RUN_DIR/ledger.db`` read-only against the head ``summary.json`` kept.

    Raises:
        RunFolderError: ``run_dir`` is not a run folder, or its summary is unreadable.
    """
    run = Path(run_dir)
    read_run_config(run)
    head = kept_head(run)
    if head is None:
        if not (run / LEDGER).is_file():
            return RunLedger(Verification(True, 0), "nothing: no ledger yet (run not complete)")
        return RunLedger(verify_ledger(run / LEDGER), "its own chain (the run is not complete)")
    against = f"the head in {SUMMARY} ({head[0]}:{head[1][:12]}..)"
    return RunLedger(verify_ledger(run / LEDGER, head=head), against)
