"""The ledger against someone who can write its file but not read its key (issue 14, item 1).

Each attack is what an attacker with the database and this source code can do: drop the
triggers, edit rows, recompute the plain hash chain with the published canonical encoding.
Only the key (``ledger.key``, mode 0600, outside the database) makes the MACs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import IncentiveError, Ledger, verify_ledger

GENESIS = "0" * 64


def plain_hash(prev, seq, row):
    """The chain hash as the module docstring publishes it: sha256 of the canonical JSON."""
    text = json.dumps(["entry", prev, seq, *row], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def filled(path):
    with Ledger(path) as led:
        led.mint("alice|bob", 3.0, round=1, memo="x")
        led.mint("carol", 2.0, round=1)
        led.transfer("carol", "alice|bob", 0.5, round=2)
        return led.head()


def rechain(db):
    """Recompute every plain hash after an edit (what an attacker without the key can do)."""
    prev = GENESIS
    rows = db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
    for seq, *fields, _prev, _hash, _mac in rows:
        digest = plain_hash(prev, seq, fields)
        db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = digest
    db.execute("UPDATE head SET seq = ?, hash = ?", (len(rows), prev))


def attack(path, edit):
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("DROP TRIGGER no_update; DROP TRIGGER no_delete;")
    edit(db)
    db.close()


def forge_append(db, account, micro, update_head):
    seq, prev = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    row = [account, "treasury", micro, "reward", 9, ""]
    digest = plain_hash(prev, seq + 1, row)
    db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq + 1, *row, prev, digest, "0" * 64),
    )
    if update_head:
        db.execute("UPDATE head SET seq = ?, hash = ?, mac = ?", (seq + 1, digest, "f" * 64))


ATTACKS = {
    "amount-edited-chain-recomputed": (
        lambda db: (db.execute("UPDATE entries SET amount = 99000000 WHERE seq = 2"), rechain(db)),
        "MAC",
    ),
    "forged-mint-with-head": (lambda db: forge_append(db, "mallory", 10**9, True), "MAC"),
    "raw-sql-append-plain-hash": (lambda db: forge_append(db, "mallory", 10**9, False), "MAC"),
    "last-row-deleted": (lambda db: db.execute("DELETE FROM entries WHERE seq = 3"), "head"),
    "drop-trigger-then-update": (
        lambda db: db.execute("UPDATE entries SET memo = 'y' WHERE seq = 1"),
        "contents do not match the hash",
    ),
    "re-split-alice|bob": (
        lambda db: db.execute(
            "UPDATE entries SET account = 'alice', counterparty = 'bob|treasury' WHERE seq = 1"
        ),
        "contents do not match the hash",
    ),
    "re-split-and-rechain": (
        lambda db: (
            db.execute(
                "UPDATE entries SET account = 'alice', counterparty = 'bob|treasury' WHERE seq = 1"
            ),
            rechain(db),
        ),
        "MAC",
    ),
    "head-table-dropped": (lambda db: db.execute("DELETE FROM head"), "head is missing"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_is_found(tmp_path, name):
    edit, reason = ATTACKS[name]
    path = tmp_path / "ledger.db"
    kept = filled(path)
    attack(path, edit)
    with Ledger(path) as led:
        found = led.verify()
    assert not found.ok and reason in found.reason, found
    assert not verify_ledger(path).ok  # read-only check, as `fedadagent ledger verify` runs it
    assert not verify_ledger(path, head=kept).ok


def test_a_truncated_file_is_found(tmp_path):
    path = tmp_path / "ledger.db"
    kept = filled(path)
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    path.write_bytes(b"")
    found = verify_ledger(path, head=kept)
    assert not found.ok and "empty or truncated" in found.reason
    with pytest.raises(IncentiveError, match="truncated or replaced"):
        Ledger(path)  # reopening does not quietly start a new ledger over the old key
    path.unlink()
    assert not verify_ledger(path, head=kept).ok  # a deleted file too


def test_an_older_copy_is_found_by_the_kept_head(tmp_path):
    path = tmp_path / "ledger.db"
    filled(path)
    old = path.read_bytes() if not path.with_name("ledger.db-wal").exists() else None
    with Ledger(path) as led:
        led.mint("carol", 1.0)
        kept = led.head()
    if old is None:  # bring the WAL into the file first, then copy
        pytest.skip("WAL not checkpointed")
    assert verify_ledger(path, head=kept).ok
    path.write_bytes(old)
    path.with_name("ledger.db-wal").unlink(missing_ok=True)
    assert not verify_ledger(path, head=kept).ok


def test_the_key_is_outside_the_file_and_private(tmp_path):
    path = tmp_path / "ledger.db"
    filled(path)
    key_file = tmp_path / "ledger.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = bytes.fromhex(key_file.read_text())
    assert key.hex() not in path.read_bytes().hex()
    key_file.unlink()
    found = verify_ledger(path)
    assert not found.ok and "no key" in found.reason
    with pytest.raises(IncentiveError, match="has entries but no key"):
        Ledger(path)
    assert verify_ledger(path, key=key).ok  # the right key, given
    assert not verify_ledger(path, key=os.urandom(32)).ok  # a wrong key


def test_the_key_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDADAGENT_LEDGER_KEY", "ab" * 32)
    path = tmp_path / "ledger.db"
    filled(path)
    assert not (tmp_path / "ledger.key").exists() and verify_ledger(path).ok
    monkeypatch.setenv("FEDADAGENT_LEDGER_KEY", "cd" * 32)
    assert "MAC" in verify_ledger(path).reason
    monkeypatch.setenv("FEDADAGENT_LEDGER_KEY", "not hex")
    with pytest.raises(IncentiveError, match="FEDADAGENT_LEDGER_KEY must hold a hex key"):
        verify_ledger(path)


names = st.text(st.sampled_from("ab|c"), min_size=1, max_size=6).filter(lambda s: s != "treasury")


@settings(max_examples=60, deadline=None)
@given(names, names, names, names)
def test_the_encoding_is_unambiguous(a1, m1, a2, m2):
    """Entries that a '|' join would make equal still get different heads (same key)."""
    key = b"k" * 32
    heads = []
    for account, memo in ((a1, m1), (a2, m2)):
        led = Ledger(":memory:", key=key)
        led.mint(account, 1.0, memo=memo)
        heads.append(led.head())
    assert (heads[0] == heads[1]) == ((a1, m1) == (a2, m2))


def test_equal_histories_give_equal_heads_under_different_keys(tmp_path):
    """The head is the plain chain: two runs of one seed agree although their keys differ."""
    assert filled(tmp_path / "one.db") == filled(tmp_path / "two.db")
    assert (tmp_path / "one.key").read_text() != (tmp_path / "two.key").read_text()
