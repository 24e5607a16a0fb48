"""The node's write-ahead event store: every accepted event, durable before it is acknowledged.

One JSON object per line in ``events.jsonl`` under the store folder (mode 0700; the files
0600: they hold the users' private events). :meth:`EventStore.append` writes a batch of events
with one ``write`` and one ``fsync`` and only then returns their sequence numbers, so an
acknowledged event survives a crash or a kill. A line cut short by a crash mid-write was never
acknowledged: opening the store drops it (truncating the file back to its last full line). On
start the node replays every event, in order, into the users' contexts. A lock file keeps a
second node off the same store.

**Compaction.** A user's context keeps only its newest ``max_events`` events, so older lines
are dead weight on disk and at replay. With ``keep_per_user`` set, the store rewrites the log
to each user's newest ``keep_per_user`` events (their sequence numbers and order kept; numbers
then have gaps) whenever it has grown to twice what the last compaction kept (and at least
``compact_min`` lines): amortised O(1) per event. The rewrite goes to a temporary file that is
fsync'ed and then renamed over the log (the folder fsync'ed too), so a crash leaves either the
old log or the new one whole, never a mix; a leftover temporary file is deleted on open.
Replaying the compacted log gives every user the same events, in the same order, as replaying
the whole log (contexts drop their oldest events first); the contexts' own event ids restart
at 0.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "edge"
    >>> with EventStore(folder) as store:
    ...     [e.seq for e in store.append([{"user": "u1", "kind": "view", "text": "red dress",
    ...                                     "time": 0.0, "category": ""}])]
    [0]
    >>> with EventStore(folder) as store:
    ...     [(e.seq, e.user, e.text) for e in store.events()]
    [(0, 'u1', 'red dress')]
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import EdgeError

EVENTS = "events.jsonl"
COMPACTING = "events.jsonl.compacting"
LOCK = "node.lock"
COMPACT_MIN = 10_000  # lines before the first automatic compaction
_FIELDS = ("user", "kind", "text", "time", "category")


@dataclass(frozen=True)
class StoredEvent:
    """One accepted event: its sequence number in the store, its user, and what the user's
    context records (``kind``, ``text``, ``time`` in seconds, ``category``)."""

    seq: int
    user: str
    kind: str
    text: str
    time: float
    category: str = ""


def _private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _open_private(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _encode(events: Sequence[StoredEvent]) -> bytes:
    return "".join(json.dumps(asdict(e), allow_nan=False) + "\n" for e in events).encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class EventStore:
    """An append-only, fsync'ed log of a node's accepted events (module doc).

    Args:
        folder: the store folder (made with mode 0700 if missing).
        keep_per_user: newest events of each user kept by compaction (the node's contexts'
            ``max_events``), >= 1; ``None``: never compact.
        compact_min: lines the log holds before its first automatic compaction, >= 1.

    Raises:
        EdgeError: another node holds the store, a line before the last is not an event, or
            an argument is out of range.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        keep_per_user: int | None = None,
        compact_min: int = COMPACT_MIN,
    ) -> None:
        for name, value in (("keep_per_user", keep_per_user), ("compact_min", compact_min)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise EdgeError(f"{name} must be an integer >= 1, got {value!r}")
        self.keep_per_user, self.compact_min = keep_per_user, compact_min
        self.folder = Path(folder)
        try:
            _private_folder(self.folder)
            self._lock = _open_private(self.folder / LOCK, os.O_RDWR)
        except OSError as exc:
            raise EdgeError(f"store {self.folder}: cannot use it ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise EdgeError(f"store {self.folder} is in use by another node") from None
        self.path = self.folder / EVENTS
        (self.folder / COMPACTING).unlink(missing_ok=True)  # a compaction a crash cut short
        self._fd = _open_private(self.path, os.O_RDWR | os.O_APPEND)
        self._lines, self._next = 0, 0
        for event in self._read():  # checks every line, keeps none
            self._lines, self._next = self._lines + 1, event.seq + 1
        self._kept = self._lines  # what the last compaction kept (here: what is on disk)
        self._size = os.fstat(self._fd).st_size
        self._sync_folder()

    def _sync_folder(self) -> None:
        dir_fd = os.open(self.folder, os.O_RDONLY)  # names (created, renamed) are durable too
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read(self) -> Iterator[StoredEvent]:
        """Every stored event in order; a torn last line is cut off the file first."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line: written by a crash, never acknowledged
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        last = -1
        for number, line in enumerate(data[:end].splitlines(), start=1):
            try:
                event = StoredEvent(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise EdgeError(f"{self.path} line {number} is not an event: {exc}") from None
            if event.seq <= last:  # gaps are compaction's; a repeat or step back is not
                raise EdgeError(f"{self.path} line {number} has seq {event.seq} after {last}")
            last = event.seq
            yield event

    def events(self) -> Iterator[StoredEvent]:
        """Every stored event, in order (what a node replays on start)."""
        return self._read()

    @property
    def count(self) -> int:
        """Events in the log now (read at open plus appended, less those compacted away)."""
        return self._lines

    def compact(self) -> int:
        """Rewrite the log to each user's newest ``keep_per_user`` events (module doc);
        the number of events dropped. Call it only from the thread that appends.

        Raises:
            EdgeError: the store has no ``keep_per_user``, or the rewrite failed (the old log
                is then left as it was).
        """
        if self.keep_per_user is None:
            raise EdgeError("compact needs keep_per_user (the contexts' max_events)")
        events = list(self._read())
        seen: dict[str, int] = {}
        keep = [False] * len(events)
        for i in range(len(events) - 1, -1, -1):  # newest first: a user's first n are kept
            user = events[i].user
            seen[user] = seen.get(user, 0) + 1
            keep[i] = seen[user] <= self.keep_per_user
        kept = [e for e, k in zip(events, keep, strict=True) if k]
        tmp = self.folder / COMPACTING
        try:
            fd = _open_private(tmp, os.O_WRONLY | os.O_TRUNC)
            try:
                _write_all(fd, _encode(kept))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            self._sync_folder()
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EdgeError(f"store {self.path}: compaction failed ({exc.strerror})") from None
        os.close(self._fd)
        self._fd = _open_private(self.path, os.O_RDWR | os.O_APPEND)
        self._lines = self._kept = len(kept)
        self._size = os.fstat(self._fd).st_size
        return len(events) - len(kept)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> list[StoredEvent]:
        """Store ``rows`` (each with ``user, kind, text, time, category``) durably: one write,
        one fsync; their :class:`StoredEvent` records (with sequence numbers) once on disk."""
        stored = [
            StoredEvent(self._next + i, *(row[k] for k in _FIELDS)) for i, row in enumerate(rows)
        ]
        data = _encode(stored)
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:  # e.g. a full disk: nothing of the batch stays, none is acked
            os.ftruncate(self._fd, self._size)
            raise EdgeError(f"store {self.path}: events not stored ({exc.strerror})") from None
        self._next += len(stored)
        self._lines += len(stored)
        self._size += len(data)
        if self.keep_per_user is not None and self._lines >= max(self.compact_min, 2 * self._kept):
            try:
                self.compact()
            except EdgeError:  # the batch is durable in the old log: it stays acknowledged
                self._kept = self._lines  # try again only after the log doubles once more
        return stored

    def close(self) -> None:
        """Close the log and release the store."""
        if self._fd >= 0:
            os.close(self._fd)
            os.close(self._lock)  # closing the descriptor releases the lock
            self._fd = -1

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
