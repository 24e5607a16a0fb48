"""The node's write-ahead event store: every accepted event, durable before it is acknowledged.

One JSON object per line in ``events.jsonl`` under the store folder (mode 0700; the files
0600: they hold the users' private events). :meth:`EventStore.append` writes a batch of events
with one ``write`` and one ``fsync`` and only then returns their sequence numbers, so an
acknowledged event survives a crash or a kill. A line cut short by a crash mid-write was never
acknowledged: opening the store drops it (truncating the file back to its last full line). On
start the node replays every event, in order, into the users' contexts. A lock file keeps a
second node off the same store.

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
LOCK = "node.lock"
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


class EventStore:
    """An append-only, fsync'ed log of a node's accepted events (module doc).

    Args:
        folder: the store folder (made with mode 0700 if missing).

    Raises:
        EdgeError: another node holds the store, or a line before the last is not an event.
    """

    def __init__(self, folder: str | Path) -> None:
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
        self._fd = _open_private(self.path, os.O_RDWR | os.O_APPEND)
        self._next = sum(1 for _ in self._read())  # checks every line, keeps none
        self._size = os.fstat(self._fd).st_size
        dir_fd = os.open(self.folder, os.O_RDONLY)  # the file's name is durable too
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
        for number, line in enumerate(data[:end].splitlines(), start=1):
            try:
                event = StoredEvent(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise EdgeError(f"{self.path} line {number} is not an event: {exc}") from None
            if event.seq != number - 1:
                raise EdgeError(f"{self.path} line {number} has seq {event.seq}")
            yield event

    def events(self) -> Iterator[StoredEvent]:
        """Every stored event, in order (what a node replays on start)."""
        return self._read()

    @property
    def count(self) -> int:
        """Events stored so far (read at open plus appended)."""
        return self._next

    def append(self, rows: Sequence[Mapping[str, Any]]) -> list[StoredEvent]:
        """Store ``rows`` (each with ``user, kind, text, time, category``) durably: one write,
        one fsync; their :class:`StoredEvent` records (with sequence numbers) once on disk."""
        stored = [
            StoredEvent(self._next + i, *(row[k] for k in _FIELDS)) for i, row in enumerate(rows)
        ]
        data = "".join(json.dumps(asdict(e), allow_nan=False) + "\n" for e in stored).encode()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:  # e.g. a full disk: nothing of the batch stays, none is acked
            os.ftruncate(self._fd, self._size)
            raise EdgeError(f"store {self.path}: events not stored ({exc.strerror})") from None
        self._next += len(stored)
        self._size += len(data)
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
