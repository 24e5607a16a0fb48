"""The ledger: balances, append-only, tamper detection, and crashes in the middle of a write."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import IncentiveError, Ledger

ROOT = Path(__file__).resolve().parents[2]


def filled(path):
    led = Ledger(path)
    for i, who in enumerate(["a", "b", "c", "a"]):
        led.mint(who, 1.0 + i, round=i)
    led.transfer("a", "b", 0.5)
    return led


def tamper(path, sql):
    """An attacker with write access to the file: drop the guards, then edit."""
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER no_update; DROP TRIGGER no_delete;" + sql)
    db.close()


def test_balances_and_append_only(tmp_path):
    with filled(tmp_path / "ledger.db") as led:
        assert led.balances() == {"a": 1.0 + 4.0 - 0.5, "b": 2.0 + 0.5, "c": 3.0}
        assert led.verify().ok and led.verify().entries == 5
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            led._db.execute("UPDATE entries SET amount = 1 WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            led._db.execute("DELETE FROM entries WHERE seq = 1")
    with Ledger(tmp_path / "ledger.db") as again:  # persistent
        assert again.balance("c") == 3.0 and again.head()[0] == 5


def test_record_rewards_is_one_write():
    led = Ledger(":memory:")
    seqs = led.record_rewards({"x": 1.5, "y": 0.0, "z": 1e-9, "w": 2.0}, round=3, memo="gtg")
    assert seqs == [1, 2] and led.balances() == {"w": 2.0, "x": 1.5}
    with pytest.raises(IncentiveError, match="reward of 'v'"):
        led.record_rewards({"u": 1.0, "v": -1.0})
    assert led.head()[0] == 2  # nothing of the refused round was written


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda led: led.transfer("c", "a", 100.0), "cannot send"),
        (lambda led: led.mint("a", 0.0), "amount must be"),
        (lambda led: led.mint("a", float("nan")), "amount must be"),
        (lambda led: led.mint("", 1.0), "account must be"),
        (lambda led: led.mint("treasury", 1.0), "account must be"),
        (lambda led: led.transfer("a", "", 1.0), "receiver must be"),
    ],
)
def test_refused_writes(tmp_path, call, match):
    with filled(tmp_path / "ledger.db") as led:
        with pytest.raises(IncentiveError, match=match):
            call(led)
        assert led.head()[0] == 5 and led.verify().ok


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("UPDATE entries SET amount = 99000000 WHERE seq = 2", "contents"),
        ("UPDATE entries SET memo = 'x' WHERE seq = 5", "contents"),
        ("DELETE FROM entries WHERE seq = 3", "missing"),
        (
            "UPDATE entries SET seq = 10 WHERE seq = 2; UPDATE entries SET seq = 2 WHERE seq = 3;"
            " UPDATE entries SET seq = 3 WHERE seq = 10",
            "previous hash",
        ),
    ],
    ids=["edited-amount", "edited-memo", "deleted", "reordered"],
)
def test_verify_finds_tampering(tmp_path, attack, reason):
    path = tmp_path / "ledger.db"
    filled(path).close()
    tamper(path, attack)
    report = Ledger(path).verify()
    assert not report.ok and reason in report.reason and report.first_bad is not None


def test_a_kept_head_catches_a_cut_tail_and_a_rewritten_chain(tmp_path):
    path = tmp_path / "ledger.db"
    led = filled(path)
    head = led.head()
    led.close()
    tamper(path, "DELETE FROM entries WHERE seq = 5")
    cut = Ledger(path).verify()
    assert not cut.ok and "head says 5 entries, found 4" in cut.reason  # the stored head
    assert not Ledger(path).verify(head).ok  # ... and the head we kept is gone
    rewritten = Ledger(tmp_path / "forged.db")  # same history, one amount changed, rehashed
    for i, who in enumerate(["a", "b", "c", "a"]):
        rewritten.mint(who, 1.0 + i + (i == 1), round=i)
    rewritten.transfer("a", "b", 0.5)
    assert rewritten.verify().ok and rewritten.verify(head).reason == "the chain was rewritten"


CRASH = """
import os, sys
sys.path.insert(0, {root!r})
from incentives import Ledger
led = Ledger({path!r})
point = {point!r}
def hook(sql):
    if sql.startswith(point):
        os._exit(17)  # the process dies here, mid-write
led._db.set_trace_callback(hook)
led.record_rewards({{"x": 1.0, "y": 2.0, "z": 3.0}}, round=9)
os._exit(18 if point == "never" else 0)
"""


@pytest.mark.parametrize(
    ("point", "code", "entries"), [("INSERT", 17, 5), ("COMMIT", 17, 5), ("never", 18, 8)]
)
def test_crash_mid_write_leaves_a_valid_ledger(tmp_path, point, code, entries):
    path = tmp_path / "ledger.db"
    filled(path).close()
    script = CRASH.format(root=str(ROOT), path=str(path), point=point)
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(script)]).returncode == code
    with Ledger(path) as led:
        assert led.verify().ok and led.verify().entries == entries
        led.mint("d", 1.0)  # and it keeps working
        assert led.verify().ok and led.balance("d") == 1.0


operations = st.lists(
    st.tuples(
        st.sampled_from(["mint", "transfer"]),
        st.sampled_from("abc"),
        st.sampled_from("abc"),
        st.integers(1, 500),
    ),
    max_size=25,
)


@settings(max_examples=40)
@given(operations, st.data())
def test_balances_add_up_and_any_edit_is_found(ops, data):
    led = Ledger(":memory:")
    minted = 0
    for op, who, other, cents in ops:
        amount = cents / 100
        if op == "mint":
            led.mint(who, amount)
            minted += cents
        elif led.balance(who) >= amount:
            led.transfer(who, other, amount)
    balances = led.balances()
    assert all(b >= 0 for b in balances.values())
    assert round(sum(balances.values()) * 100) == minted  # transfers create no tokens
    assert led.verify().ok
    count = led.head()[0]
    if count:
        seq = data.draw(st.integers(1, count))
        led._db.executescript(
            f"DROP TRIGGER no_update; UPDATE entries SET amount = amount + 1 WHERE seq = {seq}"
        )
        report = led.verify()
        assert not report.ok and report.first_bad == seq
