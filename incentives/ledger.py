"""A tamper-evident token ledger: append-only SQLite (WAL) rows, each hashing the previous one.

Every entry stores ``hash = sha256(prev_hash | seq | account | counterparty | amount | kind |
round | memo)``. ``verify()`` recomputes the chain and reports the first entry that was
edited, deleted or reordered. Writes are single transactions: a crash mid-write leaves the
ledger at its last committed entry, still valid. Amounts are integer micro-tokens, so sums are
exact.

Example:
    >>> led = Ledger(":memory:")
    >>> led.mint("alice", 2.5, kind="reward", round=1)
    1
    >>> led.transfer("alice", "bob", 1.0)
    2
    >>> led.balance("alice"), led.balance("bob"), led.verify().ok
    (1.5, 1.0, True)
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ._errors import IncentiveError

MICRO = 1_000_000  # micro-tokens per token
GENESIS = "0" * 64
TREASURY = "treasury"

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


@dataclass(frozen=True)
class Verification:
    """Result of ``Ledger.verify``: ok, or the first bad entry and why."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str = ""


def _digest(
    prev: str,
    seq: int,
    account: str,
    counterparty: str,
    amount: int,
    kind: str,
    rnd: int,
    memo: str,
) -> str:
    text = "|".join([prev, str(seq), account, counterparty, str(amount), kind, str(rnd), memo])
    return hashlib.sha256(text.encode()).hexdigest()


class Ledger:
    """Append-only, hash-chained token ledger in a SQLite file (``":memory:"`` for tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _append(
        self, account: str, counterparty: str, amount: int, kind: str, rnd: int, memo: str
    ) -> int:
        if not account or not counterparty:
            raise IncentiveError("account names must be non-empty")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            digest = _digest(prev, seq, account, counterparty, amount, kind, rnd, memo)
            self._db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, account, counterparty, amount, kind, rnd, memo, prev, digest),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return seq

    @staticmethod
    def _micro(amount: float) -> int:
        micro = round(float(amount) * MICRO)
        if micro <= 0:
            raise IncentiveError(
                f"amounts must be > 0 tokens (micro-token precision), got {amount}"
            )
        return micro

    def mint(
        self, account: str, amount: float, *, kind: str = "reward", round: int = 0, memo: str = ""
    ) -> int:
        """Credit ``amount`` new tokens from the treasury (e.g. a contribution reward)."""
        return self._append(account, TREASURY, self._micro(amount), kind, round, memo)

    def transfer(
        self, sender: str, receiver: str, amount: float, *, round: int = 0, memo: str = ""
    ) -> int:
        """Move tokens; refused if the sender's balance is too small."""
        micro = self._micro(amount)
        if self._balance_micro(sender) < micro:
            raise IncentiveError(
                f"{sender!r} has {self.balance(sender)} tokens, cannot send {amount}"
            )
        return self._append(receiver, sender, micro, "transfer", round, memo)

    def _balance_micro(self, account: str) -> int:
        got = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM entries WHERE account = ?", (account,)
        ).fetchone()[0]
        sent = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM entries WHERE counterparty = ? AND kind = "
            "'transfer'",
            (account,),
        ).fetchone()[0]
        return int(got) - int(sent)

    def balance(self, account: str) -> float:
        """Tokens held by ``account``."""
        return self._balance_micro(account) / MICRO

    def balances(self) -> dict[str, float]:
        """Every account's balance (the treasury excluded)."""
        names = {r[0] for r in self._db.execute("SELECT DISTINCT account FROM entries")}
        return {a: self.balance(a) for a in sorted(names)}

    def verify(self) -> Verification:
        """Recompute the chain: any edited, deleted or reordered entry breaks it."""
        prev, expected = GENESIS, 1
        rows = self._db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
        for seq, account, cp, amount, kind, rnd, memo, prev_hash, digest in rows:
            if seq != expected:
                return Verification(False, len(rows), seq, f"entry {expected} is missing")
            if prev_hash != prev:
                return Verification(False, len(rows), seq, "previous hash does not match")
            if _digest(prev, seq, account, cp, amount, kind, rnd, memo) != digest:
                return Verification(False, len(rows), seq, "contents do not match the hash")
            prev, expected = digest, expected + 1
        return Verification(True, len(rows))
