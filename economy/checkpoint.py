"""Checkpoints of a running market, so an interrupted run (Ctrl-C, a crash) can be resumed.

A checkpoint is the :class:`economy.market.MarketState` after a finished step (bidders, the
devices' CTR estimates, the LM agents' contexts and global adapter + head, the federation's
tokens and per-device epsilon, every random generator's state, the metrics so far) and a byte
image of the ledger database at that moment, written without pickle by
:mod:`economy.state_codec` as three files:

- ``checkpoint-<digest>.npz`` in the run folder: the exchange's part (a JSON tree stored as
  bytes under ``__tree__``, its arrays, the ledger image under ``__ledger__``);
- ``devices/checkpoint-<digest>.npz``: the devices' private part (history texts, click logs,
  click counts), mode 0600 in the run's 0700 private folder;
- ``checkpoint.json``, written last and atomically: the format, the step, each part's file
  name and sha256, the ledger's head, and a sha256 of all that.

Reading checks every digest before anything is decoded, reads arrays with
``allow_pickle=False`` and builds only the classes of ``state_codec.CLASSES``: a checkpoint
edited by hand, holding a pickled payload or naming another class is refused with
:class:`CheckpointError`, and nothing from it runs. The ledger image is checked with the
ledger's key against the recorded head before it replaces ``ledger.db``, so a resumed run pays
every reward once and never from a forged copy. The world is rebuilt from the run's config and
seed (deterministic); the ledger connection is reopened on the restored database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from incentives import read_key, verify_image

from .market import MarketState, start_market
from .rundir import (
    CHECKPOINT,
    DEVICES,
    LEDGER,
    PRIVATE_MODE,
    SUMMARY,
    RunFolderError,
    atomic_write,
    private_dir,
    read_run_config,
)
from .state_codec import Encoded, StateCodecError, decode, encode

FORMAT = 2  # 1 was a pickle (never read: unpickling can run code)
LEGACY = "checkpoint.pkl"
_PART = re.compile(r"checkpoint-[0-9a-f]{16}\.npz")
_WHERE = {"server": "", "private": DEVICES + "/"}
_TREE, _LEDGER = "__tree__", "__ledger__"


class CheckpointError(RunFolderError):
    """A checkpoint is unreadable, tampered with, or holds what a checkpoint may not."""


class NoCheckpointError(RunFolderError):
    """A run folder has no checkpoint (its run stopped before writing the first one)."""


def _roots(state: MarketState) -> dict[str, object]:
    """Objects a checkpoint names instead of writing: rebuilt from the config, or reopened."""
    roots: dict[str, object] = {"world": state.world, "cfg": state.cfg, "agents": state.cfg.agents}
    if state.fed is not None:
        roots["ledger"] = state.fed.ledger
    return roots


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sealed(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without its own ``sha256`` field (canonical JSON)."""
    rest = {k: v for k, v in manifest.items() if k != "sha256"}
    return _digest(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())


def _npz(part: Encoded, extra: dict[str, np.ndarray]) -> bytes:
    tree = np.frombuffer(json.dumps(part.tree, allow_nan=True).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **part.arrays, **extra, **{_TREE: tree})
    return buf.getvalue()


def save_checkpoint(state: MarketState, run_dir: Path) -> None:
    """Write the checkpoint of ``state`` (call between steps) into ``run_dir`` (module doc).

    Raises:
        StateCodecError: the state holds an object of a class a checkpoint may not hold.
    """
    run = Path(run_dir)
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    parts = encode(fields, roots=_roots(state))
    ledger = state.fed.ledger if state.fed is not None else None
    extra = {} if ledger is None else {_LEDGER: np.frombuffer(ledger.image(), dtype=np.uint8)}
    manifest: dict[str, Any] = {"format": FORMAT, "step": state.step, "parts": {}}
    for name, part in parts.items():
        data = _npz(part, extra if name == "server" else {})
        digest = _digest(data)
        where = private_dir(run) if name == "private" else run
        path = where / f"checkpoint-{digest[:16]}.npz"
        atomic_write(path, data, mode=PRIVATE_MODE if name == "private" else 0o644)
        manifest["parts"][name] = {"file": _WHERE[name] + path.name, "sha256": digest}
    manifest["ledger_head"] = list(ledger.head()) if ledger is not None else None
    manifest["sha256"] = _sealed(manifest)
    atomic_write(run / CHECKPOINT, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _remove_parts(run, keep={p["file"] for p in manifest["parts"].values()})


def _remove_parts(run: Path, keep: set[str] = frozenset()) -> None:
    """Delete the part files of older checkpoints (all of them when ``keep`` is empty)."""
    for prefix in _WHERE.values():
        for path in (run / prefix).glob("checkpoint-*.npz"):
            if prefix + path.name not in keep:
                path.unlink(missing_ok=True)


def remove_checkpoint(run_dir: Path) -> None:
    """Delete a run's checkpoint (manifest first, so no half-deleted one is ever read)."""
    run = Path(run_dir)
    (run / CHECKPOINT).unlink(missing_ok=True)
    _remove_parts(run)


def _manifest(run: Path) -> dict[str, Any]:
    path = run / CHECKPOINT
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} has an unknown checkpoint format (this code reads {FORMAT})")
    if manifest.get("sha256") != _sealed(manifest):
        raise CheckpointError(f"{path} was edited or corrupted: its sha256 does not match")
    return manifest


def _read_part(run: Path, name: str, entry: Any) -> Encoded:
    """One part's tree and arrays (the server's with the ledger image), its digest checked."""
    file = entry.get("file", "") if isinstance(entry, dict) else ""
    if not (file.startswith(_WHERE[name]) and _PART.fullmatch(file[len(_WHERE[name]) :])):
        raise CheckpointError(f"the checkpoint's {name} part names a bad file {file!r:.80}")
    path = run / file
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete")
    data = path.read_bytes()
    if _digest(data) != entry.get("sha256"):
        raise CheckpointError(f"{path} was edited or corrupted: its sha256 does not match")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        tree = json.loads(arrays.pop(_TREE).tobytes())
    except ValueError as exc:  # incl. "Object arrays cannot be loaded when allow_pickle=False"
        raise CheckpointError(f"{path} is refused, nothing in it was run: {exc}") from None
    except (KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint part: {exc}") from None
    return Encoded(tree, arrays)


def _restore_ledger(run: Path, image: np.ndarray | None, head: Any) -> None:
    """Put the checkpoint's ledger copy back as ``ledger.db``, once it verifies."""
    path = run / LEDGER
    if image is None:
        if head is not None:
            raise CheckpointError(f"{run / CHECKPOINT} records a ledger head but holds no ledger")
        path.unlink(missing_ok=True)
        return
    if not (isinstance(head, list) and len(head) == 2):
        raise CheckpointError(f"{run / CHECKPOINT} holds a ledger copy but no valid ledger head")
    check = verify_image(image.tobytes(), head=(int(head[0]), str(head[1])), key=read_key(path))
    if not check.ok:
        raise CheckpointError(
            f"the ledger copy in {run / CHECKPOINT} does not verify: {check.reason}"
        )
    for stale in (path.with_name(LEDGER + "-wal"), path.with_name(LEDGER + "-shm")):
        stale.unlink(missing_ok=True)  # the image is the whole committed database
    atomic_write(path, image.tobytes())


def load_checkpoint(run_dir: str | Path) -> MarketState:
    """The market state saved in ``run_dir``, its ledger restored to the same moment.

    Raises:
        RunFolderError: ``run_dir`` is not a run folder or is already complete.
        NoCheckpointError: it has no checkpoint (stopped before the first one).
        CheckpointError: the checkpoint is unreadable, edited, corrupted, an old pickle, or
            holds what a checkpoint may not (nothing from it is run).
    """
    run = Path(run_dir)
    cfg = read_run_config(run)
    if (run / SUMMARY).is_file():
        raise RunFolderError(f"{run} is complete ({SUMMARY} exists): nothing to resume")
    if not (run / CHECKPOINT).is_file():
        if (run / LEGACY).is_file():
            raise CheckpointError(
                f"{run / LEGACY} is a pickle checkpoint of an older version: it is never read "
                "(unpickling can run code); start the run again"
            )
        raise NoCheckpointError(f"{run} has no {CHECKPOINT}: it stopped before its first one")
    manifest = _manifest(run)
    entries = manifest.get("parts")
    if not isinstance(entries, dict) or set(entries) != set(_WHERE):
        raise CheckpointError(f"{run / CHECKPOINT} must name the parts {sorted(_WHERE)}")
    parts = {name: _read_part(run, name, entries[name]) for name in _WHERE}
    _restore_ledger(run, parts["server"].arrays.pop(_LEDGER, None), manifest.get("ledger_head"))
    fresh = start_market(cfg, run / LEDGER)
    try:
        fields = decode(parts, roots=_roots(fresh))
        return MarketState(**fields)
    except (StateCodecError, TypeError) as exc:
        fresh.close()
        raise CheckpointError(f"{run / CHECKPOINT} is refused: {exc}") from None
