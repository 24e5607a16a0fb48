"""A tamper-evident token ledger: append-only SQLite (WAL) rows, each hashing the previous one.

Every entry stores ``hash = sha256(prev_hash | seq | account | counterparty | amount | kind |
round | memo)``. ``verify()`` recomputes the chain and reports the first entry that was
edited, deleted or reordered; deleting entries at the end, or rewriting the whole chain, is
caught by comparing with a ``head()`` kept elsewhere (``verify(head=...)``). Every write is one
transaction: a crash mid-write leaves the ledger at its last committed entry, still valid.
Amounts are integer micro-tokens, so sums are exact.

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
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ._errors import IncentiveError

MICRO = 1_000_000  # micro-tokens per token
GENESIS = "0" * 64
TREASURY = "treasury"  # the counterparty of minted tokens; not an account of its own

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
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""

# (account, counterparty, micro-tokens, kind, round, memo)
_Row = tuple[str, str, int, str, int, str]


@dataclass(frozen=True)
class Verification:
    """Result of ``Ledger.verify``: ok, or the first bad entry (its seq) and why."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str = ""


def _digest(prev: str, seq: int, row: _Row) -> str:
    text = "|".join([prev, str(seq), *map(str, row)])
    return hashlib.sha256(text.encode()).hexdigest()


def _micro(amount: float, name: str = "amount") -> int:
    micro = round(float(amount) * MICRO) if math.isfinite(amount) else 0
    if micro <= 0:
        raise IncentiveError(f"{name} must be a finite number >= 1e-6 tokens, got {amount}")
    return micro


def _account(name: str, what: str = "account") -> str:
    if not isinstance(name, str) or not name or name == TREASURY:
        raise IncentiveError(f"{what} must be a non-empty name other than {TREASURY!r}: {name!r}")
    return name


class Ledger:
    """Append-only, hash-chained token ledger in a SQLite file (``":memory:"`` for tests).

    Usable as a context manager (closes the connection). One ledger object may be handed from
    one thread to another (a Flower ServerApp runs in its own thread) but not used by two at
    once; every write is one transaction.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a returned write survives power loss
        self._db.executescript(_SCHEMA)

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
                self._db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, *row, prev, digest),
                )
                seqs.append(seq)
                prev = digest
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return seqs

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
        """Recompute the chain: any edited, deleted or reordered entry breaks it.

        Args:
            head: a ``head()`` taken earlier and kept outside the database; the chain must
                still contain it (catches deleted tail entries and a rewritten chain).
        """
        prev, expected = GENESIS, 1
        rows = self._db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
        for seq, *fields, prev_hash, digest in rows:
            if seq != expected:
                return Verification(False, len(rows), seq, f"entry {expected} is missing")
            if prev_hash != prev:
                return Verification(False, len(rows), seq, "previous hash does not match")
            if _digest(prev, seq, tuple(fields)) != digest:  # type: ignore[arg-type]
                return Verification(False, len(rows), seq, "contents do not match the hash")
            prev, expected = digest, expected + 1
        if head is not None and head[0] > 0:
            if head[0] > len(rows):
                return Verification(False, len(rows), head[0], f"entry {head[0]} is missing")
            if rows[head[0] - 1][-1] != head[1]:
                return Verification(False, len(rows), head[0], "the chain was rewritten")
        return Verification(True, len(rows))
