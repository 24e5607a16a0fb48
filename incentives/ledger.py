"""A tamper-evident token ledger: append-only SQLite (WAL) rows, chained and authenticated.

Every entry stores ``hash = sha256(canonical(prev_hash, seq, account, counterparty, amount,
kind, round, memo))`` and ``mac = HMAC-SHA256(key, hash)``; a one-row ``head`` table holds the
last ``(seq, hash)`` and its own MAC, rewritten in the same transaction as every append. The
encoding is canonical JSON (a list: ``["alice|bob", "x"]`` and ``["alice", "bob|x"]`` differ),
never a joined string. The key is not in the database: it is ``<db>.key`` next to the file
(32 random bytes, hex, mode 0600, made with the ledger) or the ``FEDADAGENT_LEDGER_KEY``
environment variable (hex), or a key given to the constructor; an in-memory ledger draws one.

``verify()`` reports the first entry that was edited, forged, appended without the key,
deleted or reordered, and a head that does not match (the last entry deleted). Someone who
can write the file but not read the key can drop the triggers and rewrite rows and hashes, but
cannot make the MACs; a truncated or replaced file, or an older copy, is caught by comparing
with a ``head()`` kept elsewhere (``verify(head=...)``; a run keeps it in ``summary.json`` and
its checkpoint). The plain hash chain (not the MAC) is the head, so equal runs give equal heads.
Every write is one transaction: a crash mid-write leaves the ledger at its last committed
entry, still valid. Amounts are integer micro-tokens, so sums are exact.

Example:
    >>> led = Ledger(":memory:")
    >>> led.mint("alice", 2.5, round=1)
    1
    >>> led.transfer("alice", "bob", 1.0)
    2
    >>> led.balance("alice"), led.balance("bob"), led.verify().ok
    (1.5, 1.0, True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ._errors import IncentiveError

MICRO = 1_000_000  # micro-tokens per token
GENESIS = "0" * 64
TREASURY = "treasury"  # the counterparty of minted tokens; not an account of its own
KEY_ENV = "FEDADAGENT_LEDGER_KEY"  # hex key; overrides the key file
KEY_BYTES = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    counterparty TEXT NOT NULL,
    amount INTEGER NOT NULL,
    kind TEXT NOT NULL,
    round INTEGER NOT NULL,
    memo TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""
_COLUMNS = ["seq", "account", "counterparty", "amount", "kind", "round", "memo"]
_COLUMNS += ["prev_hash", "hash", "mac"]

# (account, counterparty, micro-tokens, kind, round, memo)
_Row = tuple[str, str, int, str, int, str]


@dataclass(frozen=True)
class Verification:
    """Result of ``Ledger.verify``: ok, or the first bad entry (its seq) and why."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str = ""


def _canonical(*fields: object) -> bytes:
    """One unambiguous byte string for a tuple of str/int fields (JSON list, UTF-8)."""
    return json.dumps(list(fields), ensure_ascii=False, separators=(",", ":")).encode()


def _digest(prev: str, seq: int, row: tuple[object, ...]) -> str:
    return hashlib.sha256(_canonical("entry", prev, seq, *row)).hexdigest()


def _mac(key: bytes, *fields: object) -> str:
    return hmac.new(key, _canonical(*fields), hashlib.sha256).hexdigest()


def _micro(amount: float, name: str = "amount") -> int:
    micro = round(float(amount) * MICRO) if math.isfinite(amount) else 0
    if micro <= 0:
        raise IncentiveError(f"{name} must be a finite number >= 1e-6 tokens, got {amount}")
    return micro


def _account(name: str, what: str = "account") -> str:
    if not isinstance(name, str) or not name or name == TREASURY:
        raise IncentiveError(f"{what} must be a non-empty name other than {TREASURY!r}: {name!r}")
    return name


def key_path(db_path: str | Path) -> Path:
    """Where the key of the ledger file ``db_path`` lives: ``<db without suffix>.key``."""
    return Path(db_path).with_suffix(".key")


def _parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < 16:
        raise IncentiveError(f"{where} must hold a hex key of >= 16 bytes (32 hex digits)")
    return key


def read_key(db_path: str | Path) -> bytes | None:
    """The ledger key from ``$FEDADAGENT_LEDGER_KEY`` or the key file; None when neither."""
    if os.environ.get(KEY_ENV):
        return _parse_key(os.environ[KEY_ENV], f"${KEY_ENV}")
    path = key_path(db_path)
    return _parse_key(path.read_text(), str(path)) if path.is_file() else None


def _new_key_file(path: Path) -> bytes:
    """Make ``path`` (mode 0600, never over an existing file) with a fresh random key."""
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return found.fetchone() is not None


def _check_chain(db: sqlite3.Connection, key: bytes, head: tuple[int, str] | None) -> Verification:
    """Every entry's chain link, hash and MAC; the stored head; then the kept ``head``."""
    if not (_has_table(db, "entries") and _has_table(db, "head")):
        return Verification(False, 0, None, "the file holds no ledger (empty or truncated)")
    columns = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
    if columns != _COLUMNS:
        return Verification(False, 0, None, f"unknown ledger layout (columns {columns})")
    rows = db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
    n = len(rows)
    prev, expected = GENESIS, 1
    for seq, *fields, prev_hash, digest, mac in rows:
        if seq != expected:
            return Verification(False, n, seq, f"entry {expected} is missing")
        if prev_hash != prev:
            return Verification(False, n, seq, "previous hash does not match")
        if _digest(prev, seq, tuple(fields)) != digest:
            return Verification(False, n, seq, "contents do not match the hash")
        if not hmac.compare_digest(str(mac), _mac(key, "entry-mac", digest)):
            return Verification(False, n, seq, "contents do not match the MAC (forged)")
        prev, expected = digest, expected + 1
    stored = db.execute("SELECT seq, hash, mac FROM head").fetchall()
    if len(stored) != 1:
        return Verification(False, n, None, "the authenticated head is missing")
    (s_seq, s_hash, s_mac) = stored[0]
    if not hmac.compare_digest(str(s_mac), _mac(key, "head", s_seq, s_hash)):
        return Verification(False, n, None, "the stored head's MAC does not match (forged)")
    if (s_seq, s_hash) != (n, prev):
        return Verification(False, n, n + 1, f"the head says {s_seq} entries, found {n}")
    if head is not None and head[0] > 0:
        if head[0] > n:
            return Verification(False, n, head[0], f"entry {head[0]} is missing")
        if rows[head[0] - 1][-2] != head[1]:
            return Verification(False, n, head[0], "the chain was rewritten")
    return Verification(True, n)


def verify_ledger(
    path: str | Path, *, head: tuple[int, str] | None = None, key: bytes | None = None
) -> Verification:
    """Check the ledger file ``path`` read-only (nothing is created or written).

    Args:
        path: the SQLite file.
        head: ``(entries, hash)`` kept elsewhere; the ledger must hold exactly that many
            entries and end in that hash (catches a truncated, rolled back or replaced file).
        key: the ledger key (default: ``$FEDADAGENT_LEDGER_KEY``, else ``<db>.key``).
    """
    path = Path(path)
    if not path.is_file():
        ok = head is not None and head[0] == 0
        return Verification(ok, 0, None if ok else 1, "" if ok else f"{path} does not exist")
    key = key if key is not None else read_key(path)
    if key is None:
        return Verification(False, 0, None, f"no key: {key_path(path)} is missing")
    return _check_exactly(
        sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True), key, head
    )


def verify_image(
    image: bytes, *, head: tuple[int, str] | None = None, key: bytes | None
) -> Verification:
    """Check a ledger database held as bytes (``Ledger.image()``, e.g. a checkpoint's copy)
    as :func:`verify_ledger` checks a file, without writing it anywhere."""
    if key is None:
        return Verification(False, 0, None, "no key to check it with")
    db = sqlite3.connect(":memory:")
    try:
        db.deserialize(_rollback_header(image))
    except sqlite3.DatabaseError as exc:
        db.close()
        return Verification(False, 0, None, f"not a readable ledger: {exc}")
    return _check_exactly(db, key, head)


def _rollback_header(image: bytes) -> bytes:
    """``image`` marked as a rollback-journal database (header bytes 18-19 = 1): SQLite cannot
    open a WAL-marked image in memory; a ``Ledger`` on the file turns WAL on again."""
    if image[:16] != b"SQLite format 3\x00" or len(image) < 20:
        return image  # not a database: deserialize says so
    return image[:18] + b"\x01\x01" + image[20:]


def _check_exactly(
    db: sqlite3.Connection, key: bytes, head: tuple[int, str] | None
) -> Verification:
    """``_check_chain`` on ``db`` (then closed); a kept ``head`` must also be the last entry."""
    try:
        check = _check_chain(db, key, head)
    except sqlite3.DatabaseError as exc:
        return Verification(False, 0, None, f"not a readable ledger: {exc}")
    finally:
        db.close()
    if check.ok and head is not None and check.entries != head[0]:
        return Verification(False, check.entries, check.entries + 1, f"expected {head[0]} entries")
    return check


def count_entries(path: str | Path) -> int:
    """Entries in the ledger file ``path``, read-only (0: no file, or no ledger in it yet).

    Raises:
        sqlite3.DatabaseError: the file is not a database.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if not _has_table(db, "entries"):
            return 0
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    finally:
        db.close()


class Ledger:
    """Append-only, chained and authenticated token ledger in a SQLite file (module doc).

    Args:
        path: the database file (``":memory:"`` for tests).
        key: the HMAC key (>= 16 bytes); default ``$FEDADAGENT_LEDGER_KEY``, else the key
            file ``<path>.key``, made (mode 0600) with a new ledger; a random one in memory.

    Raises:
        IncentiveError: a ledger with entries whose key is missing, a file that lost its
            ledger while its key file remains (truncated), or an older, unauthenticated layout.

    Usable as a context manager (closes the connection). One ledger object may be handed from
    one thread to another (a Flower ServerApp runs in its own thread) but not used by two at
    once; every write is one transaction.
    """

    def __init__(self, path: str | Path, *, key: bytes | None = None) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._key = self._open(key)
        except BaseException:
            self._db.close()
            raise

    def _open(self, key: bytes | None) -> bytes:
        memory = self.path == ":memory:"
        if not memory:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a returned write survives power loss
        fresh = not _has_table(self._db, "entries")
        if key is None and not memory:
            key = read_key(self.path)
            if key is not None and fresh and not os.environ.get(KEY_ENV):
                raise IncentiveError(
                    f"{self.path} holds no ledger but its key {key_path(self.path)} exists: "
                    "the ledger was truncated or replaced"
                )
            if key is None:
                if not fresh:
                    raise IncentiveError(
                        f"{self.path} has entries but no key ({key_path(self.path)} or "
                        f"${KEY_ENV}): it cannot be verified or extended"
                    )
                key = _new_key_file(key_path(self.path))
        key = os.urandom(KEY_BYTES) if key is None else key
        if len(key) < 16:
            raise IncentiveError(f"key must be >= 16 bytes, got {len(key)}")
        if not fresh and [r[1] for r in self._db.execute("PRAGMA table_info(entries)")] != _COLUMNS:
            raise IncentiveError(f"{self.path} is an older, unauthenticated ledger layout")
        self._db.executescript(_SCHEMA)
        if fresh:
            self._db.execute(
                "INSERT OR IGNORE INTO head VALUES (1, 0, ?, ?)",
                (GENESIS, _mac(key, "head", 0, GENESIS)),
            )
        return key

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _append(self, rows: list[_Row], spender: tuple[str, int] | None = None) -> list[int]:
        """Chain ``rows`` in one transaction; ``spender`` (account, micro) must be covered."""
        self._db.execute("BEGIN IMMEDIATE")  # the balance check and the writes see one state
        try:
            if spender is not None and self._balance_micro(spender[0]) < spender[1]:
                raise IncentiveError(
                    f"{spender[0]!r} holds {self.balance(spender[0])} tokens, "
                    f"cannot send {spender[1] / MICRO}"
                )
            seq, prev = self.head()
            seqs = []
            for row in rows:
                seq += 1
                digest = _digest(prev, seq, row)
                mac = _mac(self._key, "entry-mac", digest)
                self._db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, *row, prev, digest, mac),
                )
                seqs.append(seq)
                prev = digest
            self._db.execute(
                "UPDATE head SET seq = ?, hash = ?, mac = ? WHERE id = 1",
                (seq, prev, _mac(self._key, "head", seq, prev)),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return seqs

    def image(self) -> bytes:
        """The committed database as bytes (what a checkpoint keeps): :func:`verify_image`
        checks it, writing it to a file restores the ledger to this moment."""
        mem = sqlite3.connect(":memory:")
        try:
            self._db.backup(mem)
            return _rollback_header(mem.serialize())
        finally:
            mem.close()

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, ``(0, GENESIS)`` when empty: keep it to pin the chain."""
        row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def mint(
        self, account: str, amount: float, *, kind: str = "reward", round: int = 0, memo: str = ""
    ) -> int:
        """Credit ``amount`` new tokens from the treasury (e.g. a contribution reward); its seq."""
        return self._append([(_account(account), TREASURY, _micro(amount), kind, round, memo)])[0]

    def record_rewards(
        self, rewards: Mapping[str, float], *, round: int = 0, memo: str = ""
    ) -> list[int]:
        """Mint a round's rewards all at once (one transaction: all recorded or none).

        Amounts below one micro-token are skipped (a zero reward leaves no entry).
        Returns the new entries' seqs.
        """
        rows = [
            (_account(a), TREASURY, _micro(x, f"reward of {a!r}"), "reward", round, memo)
            for a, x in rewards.items()
            if not 0 <= x < 0.5 / MICRO
        ]
        return self._append(rows) if rows else []

    def transfer(
        self, sender: str, receiver: str, amount: float, *, round: int = 0, memo: str = ""
    ) -> int:
        """Move tokens; refused (``IncentiveError``) if the sender's balance is too small."""
        micro = _micro(amount)
        row = (_account(receiver, "receiver"), _account(sender, "sender"), micro, "transfer")
        return self._append([(*row, round, memo)], spender=(sender, micro))[0]

    def _balance_micro(self, account: str) -> int:
        (got,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM entries WHERE account = ?", (account,)
        ).fetchone()
        (sent,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM entries "
            "WHERE counterparty = ? AND kind = 'transfer'",
            (account,),
        ).fetchone()
        return int(got) - int(sent)

    def balance(self, account: str) -> float:
        """Tokens held by ``account``."""
        return self._balance_micro(account) / MICRO

    def balances(self) -> dict[str, float]:
        """Every account's balance, by name."""
        names = {r[0] for r in self._db.execute("SELECT DISTINCT account FROM entries")}
        return {a: self.balance(a) for a in sorted(names)}

    def verify(self, head: tuple[int, str] | None = None) -> Verification:
        """Recompute the chain and its MACs: any edited, forged, deleted or reordered entry, or
        a deleted last entry, breaks it.

        Args:
            head: a ``head()`` taken earlier and kept outside the database; the chain must
                still contain it (catches a rolled-back or rewritten file).
        """
        return _check_chain(self._db, self._key, head)
