"""Hostile configs (issue 14 items 4, 5, 8): each is refused with a message naming the key and
what is allowed, the CLI exits with status 2, and nothing is written to ``output_dir``."""

from __future__ import annotations

import math
import os
import re

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.cli import main
from economy.config import ECHO_CHARS, EXACT_MAX_CLIENTS, ConfigError, load_config, parse_config

# (dotted key, hostile value, fragment of what is allowed); expected ranges from the issue.
HOSTILE = [
    ("market.users", True, "an integer in [1, 1000000]"),
    ("market.steps", 3.0, "an integer in [1, 100000]"),
    ("seed", "7", "an integer in [0, "),
    ("market.base_ctr", math.nan, "a finite number in (0.0, 1.0]"),
    ("market.base_ctr", math.inf, "a finite number in (0.0, 1.0]"),
    ("market.base_ctr", False, "a number in (0.0, 1.0]"),
    ("auction.reserve", -math.inf, "a finite number in [0.0, 1000000.0]"),
    ("auction.slot_ctrs", [1.0, math.nan], "a finite number"),
    ("social.taste_concentration", 1e308, "less than or equal to 1000000"),
    ("social.trend_private", 1, "true or false"),
    ("advertisers.value_mean", 1e300, "less than or equal to 1000000"),
    ("advertisers.strategies.truthful", math.inf, "a finite number"),
    ("privacy.epsilon_budget", math.nan, "greater than 0"),
    ("privacy.delta", math.nan, "a finite number in (0.0, 0.01)"),
    ("name", 5, "a string"),
]


def _at(dotted: str, value: object) -> dict:
    *parents, leaf = dotted.split(".")
    data: dict = {leaf: value}
    for part in reversed(parents):
        data = {part: data}
    return data


@pytest.mark.parametrize(("key", "value", "allowed"), HOSTILE)
def test_hostile_value_names_key_and_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as exc:
        parse_config(_at(key, value))
    msg = str(exc.value)
    assert f"'{key}" in msg and allowed in msg


@pytest.mark.parametrize(("key", "value", "allowed"), HOSTILE)
def test_cli_refuses_hostile_override_and_writes_nothing(tmp_path, capsys, key, value, allowed):
    out = tmp_path / "runs"
    text = tomli_w.dumps({"v": value}).removeprefix("v = ").strip()
    code = main(["run", "-c", f"{key}={text}", "-o", str(out), "--no-progress"])
    assert code == 2
    assert f"'{key}" in capsys.readouterr().err
    assert not out.exists()


def test_epsilon_budget_documents_inf():
    assert parse_config(_at("privacy.epsilon_budget", math.inf)).privacy.epsilon_budget == math.inf


@given(
    st.sampled_from(
        [
            "market.base_ctr",
            "auction.reserve",
            "social.avg_degree",
            "federated.lr",
            "world.smoothing",
        ]
    ),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
@settings(max_examples=30, deadline=None)
def test_no_float_key_takes_non_finite(key, value):
    with pytest.raises(ConfigError, match=f"'{key}': .*finite number"):
        parse_config(_at(key, value))


@given(st.booleans(), st.sampled_from(["market.users", "market.base_ctr", "seed", "world.history"]))
@settings(max_examples=20, deadline=None)
def test_no_bool_is_a_number(flag, key):
    with pytest.raises(ConfigError, match=f"'{key}': Input should be a valid (integer|number)"):
        parse_config(_at(key, flag))


@given(st.text(min_size=ECHO_CHARS + 1, max_size=5 * ECHO_CHARS))
@settings(max_examples=20, deadline=None)
def test_huge_value_is_clipped_in_the_message(value):
    with pytest.raises(ConfigError) as exc:
        parse_config({"name": value * 1000})
    msg = str(exc.value)
    assert "'name'" in msg and f"{len(repr(value * 1000)):,} characters" in msg
    assert len(msg) < 3 * ECHO_CHARS + 200


def test_huge_override_is_clipped(capsys):
    assert main(["config", "-c", "x" * 10_000_000]) == 2
    assert len(capsys.readouterr().err) < 1000


def test_exact_valuation_refused_beyond_its_client_limit():
    n = EXACT_MAX_CLIENTS + 4
    fed = {"valuation": "exact", "clients_per_round": n}
    with pytest.raises(ConfigError) as exc:
        parse_config({"federated": fed})
    msg = str(exc.value)
    assert f"2^{n} coalitions" in msg
    assert all(alt in msg for alt in ("'gtg'", "'svarm-cv'", "'tmc'"))
    ok = {**fed, "clients_per_round": EXACT_MAX_CLIENTS}
    assert parse_config({"federated": ok}).federated.valuation == "exact"
    assert parse_config({"federated": {**fed, "every": 0}}).federated.every == 0  # no rounds


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'name = "\xff\xfe"\n', "not UTF-8 text (byte 0xff at offset 8)"),
        (b"a = " + b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b"a = " + b"{b = " * 1000 + b"1" + b"}" * 1000, "nested too deeply"),
    ],
)
def test_unreadable_file_is_a_config_error(tmp_path, capsys, content, fragment):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path)
    out = tmp_path / "runs"
    assert main(["run", str(path), "-o", str(out), "--no-progress"]) == 2
    assert fragment in capsys.readouterr().err and not out.exists()


def test_deep_override_is_a_config_error(capsys):
    assert main(["config", "-c", "name=" + "[" * 1000 + "]" * 1000]) == 2
    assert "nested too deeply" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "auction", "sweep"])
def test_output_dir_that_is_a_file(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    extra = {"run": ["--no-progress"], "sweep": ["--no-progress", "--grid", "seed=1,2"]}
    for out in (blocker, blocker / "sub"):
        assert main([command, "-o", str(out), *extra.get(command, [])]) == 2
        err = capsys.readouterr().err
        assert f"output_dir {out}" in err and "is a file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any folder")
def test_output_dir_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["run", "-o", str(locked / "runs"), "--no-progress"]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert not any(locked.iterdir())
