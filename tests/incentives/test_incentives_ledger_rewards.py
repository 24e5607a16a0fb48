"""The ledger detects tampering and survives a crash mid-write; rewards are concave and fair."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incentives import IncentiveError, Ledger, RewardPolicy, gini


def filled(path):
    led = Ledger(path)
    for i, who in enumerate(["a", "b", "c", "a"]):
        led.mint(who, 1.0 + i, round=i)
    led.transfer("a", "b", 0.5)
    return led


def raw(path):
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER no_update; DROP TRIGGER no_delete;")  # an attacker's move
    return db


def test_balances_and_append_only(tmp_path):
    path = tmp_path / "ledger.db"
    led = filled(path)
    assert led.balances() == {"a": 1.0 + 4.0 - 0.5, "b": 2.0 + 0.5, "c": 3.0}
    assert led.verify().ok and led.verify().entries == 5
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        led._db.execute("UPDATE entries SET amount = 1 WHERE seq = 1")
    with pytest.raises(IncentiveError, match="cannot send"):
        led.transfer("c", "a", 100.0)
    with pytest.raises(IncentiveError, match="> 0"):
        led.mint("a", 0.0)


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("UPDATE entries SET amount = 99000000 WHERE seq = 2", "contents"),
        ("DELETE FROM entries WHERE seq = 3", "missing"),
        (
            "UPDATE entries SET seq = 10 WHERE seq = 2; UPDATE entries SET seq = 2 WHERE seq = 3;"
            " UPDATE entries SET seq = 3 WHERE seq = 10",
            "previous hash",
        ),
    ],
    ids=["edited", "deleted", "reordered"],
)
def test_verify_finds_tampering(tmp_path, attack, reason):
    path = tmp_path / "ledger.db"
    filled(path).close()
    db = raw(path)
    db.executescript(attack)
    db.close()
    report = Ledger(path).verify()
    assert not report.ok and reason in report.reason and report.first_bad is not None


def test_crash_mid_write_leaves_a_valid_ledger(tmp_path):
    path = tmp_path / "ledger.db"
    filled(path).close()
    crash = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).resolve().parents[2])!r})
        from incentives import Ledger
        led = Ledger({str(path)!r})
        led._db.execute("BEGIN IMMEDIATE")
        led._db.execute(
            "INSERT INTO entries VALUES (6, 'x', 'treasury', 5, 'reward', 0, '', 'bad', 'bad')"
        )
        os._exit(1)  # killed before COMMIT
        """
    )
    assert subprocess.run([sys.executable, "-c", crash]).returncode == 1
    led = Ledger(path)
    assert led.verify().ok and led.verify().entries == 5
    led.mint("d", 1.0)
    assert led.verify().ok and led.balance("d") == 1.0


def test_rewards_concave_floor_and_budget():
    policy = RewardPolicy(revenue_share=0.5, floor_share=0.5)
    pay = policy.pay(np.array([4.0, 1.0, 0.0001, 0.0, -1.0]), revenue=100.0)
    assert pay[0] < 4 * pay[1]  # diminishing returns: 4x the value, 2x the pay
    assert pay[2] == pytest.approx(0.5 * (2 + 1 + 0.01) / 3)  # lifted to half the mean raw pay
    assert pay[3] == 0 and pay[4] == 0
    capped = RewardPolicy(revenue_share=0.01).pay(np.array([100.0, 100.0]), revenue=10.0)
    assert capped.sum() == pytest.approx(0.1)


def test_price_follows_demand():
    policy = RewardPolicy(demand_rate=0.5)
    policy.pay(np.array([1.0]), 100.0)
    start = policy.price
    policy.pay(np.array([0.01]), 100.0)  # value became scarce
    assert policy.price > start


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_gini_bounds(xs):
    g = gini(np.array(xs))
    assert 0 <= g <= 1
    assert gini(np.ones(5)) == 0.0
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
