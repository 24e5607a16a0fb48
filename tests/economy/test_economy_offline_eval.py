"""Off-policy estimators (IPW, DM, DR) and the offline evaluation on the Open Bandit Dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from economy.cli import main
from economy.config import ConfigError, parse_config
from economy.offline_eval import (
    OfflineError,
    agent_policy,
    direct_method,
    doubly_robust,
    evaluate,
    ipw,
    load_open_bandit,
)
from economy.seeding import RunSeeds


def test_estimators_on_a_hand_computed_example():
    # 3 rounds, 2 actions, 1 position; the behaviour policy's propensities of the logged items
    reward = np.array([1, 0, 1])
    action = np.array([0, 1, 1])
    position = np.zeros(3, int)
    pscore = np.array([0.5, 0.25, 0.75])
    pi_e = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])[:, :, None]
    q_hat = np.array([[0.5, 0.1], [0.2, 0.3], [0.6, 0.4]])[:, :, None]
    # weights 0.8/0.5 = 1.6, 0.6/0.25 = 2.4, 0.9/0.75 = 1.2
    # IPW terms 1.6, 0, 1.2 -> 2.8 / 3
    assert ipw(reward, action, position, pscore, pi_e).value == pytest.approx(2.8 / 3)
    # DM terms 0.8*0.5+0.2*0.1 = 0.42, 0.4*0.2+0.6*0.3 = 0.26, 0.1*0.6+0.9*0.4 = 0.42
    dm = direct_method(reward, action, position, pscore, pi_e, q_hat)
    assert dm.value == pytest.approx(1.1 / 3)
    # DR terms 0.42 + 1.6*(1-0.5) = 1.22, 0.26 + 2.4*(0-0.3) = -0.46, 0.42 + 1.2*(1-0.4) = 1.14
    dr = doubly_robust(reward, action, position, pscore, pi_e, q_hat)
    assert dr.value == pytest.approx(1.9 / 3)
    assert dr.stderr == pytest.approx(np.std([1.22, -0.46, 1.14], ddof=1) / np.sqrt(3))


@st.composite
def _logs(draw):
    n = draw(st.integers(2, 30))
    k = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pi_b = rng.dirichlet(np.ones(k), size=n)[:, :, None]
    action = np.array([rng.choice(k, p=p[:, 0]) for p in pi_b])
    reward = rng.integers(0, 2, size=n)
    q_hat = rng.random((n, k, 1))
    return reward, action, np.zeros(n, int), pi_b[np.arange(n), action, 0], pi_b, q_hat


@given(_logs())
def test_logging_policy_on_itself(log):
    """pi_e = pi_b: every weight is 1, so IPW is the on-policy mean reward and DR's residual
    term cancels the click model's error on the logged items."""
    reward, action, position, pscore, pi_b, q_hat = log
    assert ipw(reward, action, position, pscore, pi_b).value == pytest.approx(reward.mean())
    dr = doubly_robust(reward, action, position, pscore, pi_b, q_hat).value
    dm = direct_method(reward, action, position, pscore, pi_b, q_hat).value
    n = reward.size
    assert dr == pytest.approx(dm + (reward - q_hat[np.arange(n), action, 0]).mean())
    # with a zero click model DR is IPW
    zero = np.zeros_like(q_hat)
    assert doubly_robust(reward, action, position, pscore, pi_b, zero).value == pytest.approx(
        reward.mean()
    )


def test_estimators_are_unbiased_on_a_known_bandit():
    """A synthetic log with known click probabilities: IPW and DR recover the true value of
    another policy within four standard errors; DR with a noisy model has the smaller error."""
    rng = np.random.default_rng(0)
    n, k = 20_000, 5
    ctr = rng.uniform(0.05, 0.4, size=(n, k))
    pi_b = rng.dirichlet(np.ones(k) * 2, size=n)
    pi_e = rng.dirichlet(np.ones(k) * 2, size=n)
    action = (rng.random((n, 1)) > pi_b.cumsum(1)).sum(1).clip(0, k - 1)
    reward = (rng.random(n) < ctr[np.arange(n), action]).astype(int)
    truth = float((pi_e * ctr).sum(1).mean())
    logged = (reward, action, np.zeros(n, int), pi_b[np.arange(n), action])
    q_hat = np.clip(ctr + rng.normal(0, 0.05, size=ctr.shape), 0, 1)[:, :, None]
    est_ipw = ipw(*logged, pi_e[:, :, None])
    est_dr = doubly_robust(*logged, pi_e[:, :, None], q_hat)
    assert abs(est_ipw.value - truth) < 4 * est_ipw.stderr
    assert abs(est_dr.value - truth) < 4 * est_dr.stderr
    assert est_dr.stderr < est_ipw.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pscore": np.array([0.5, 0.0, 0.5])}, "pscore"),
        ({"action": np.array([0, 1, 2])}, "action"),
        ({"pi_e": np.full((3, 2, 1), 0.7)}, "distribution"),
        ({"pi_e": np.full((3, 2), 0.5)}, "action_dist"),
        ({"pscore": np.array([0.5, 0.5])}, "pscore"),
    ],
)
def test_bad_inputs_name_the_array(change, message):
    args = {
        "reward": np.array([1, 0, 1]),
        "action": np.array([0, 1, 1]),
        "position": np.zeros(3, int),
        "pscore": np.full(3, 0.5),
        "pi_e": np.full((3, 2, 1), 0.5),
    }
    args.update(change)
    with pytest.raises(OfflineError, match=message):
        ipw(*args.values())


def test_open_bandit_sample_is_read_like_obp():
    log = load_open_bandit("random", "all")
    assert log.n_rounds == 10_000 and log.n_actions == 80 and log.len_list == 3
    np.testing.assert_allclose(log.pscore, 1 / 80)
    assert log.affinity.shape == (10_000, 80)
    assert set(np.unique(log.reward)) == {0, 1}
    assert log.context.shape[0] == 10_000 and set(np.unique(log.context)) <= {0.0, 1.0}
    with pytest.raises(OfflineError, match="campaign"):
        load_open_bandit("random", "kids")


def test_uniform_policy_recovers_the_on_policy_ctr_of_the_random_log():
    cfg = parse_config({"offline": {"dataset": "obp"}})
    out = evaluate(cfg)
    check = out["uniform_random_check"]
    assert check["ipw"]["value"] == pytest.approx(out["on_policy_ctr"])  # weights are all 1
    assert check["dr"]["value"] == pytest.approx(out["on_policy_ctr"], abs=2e-3)
    agent = out["agent_policy"]
    assert agent["weight_mean"] == pytest.approx(1.0, abs=0.2)  # softmax: E[w] = 1
    assert out["rounds"] == {"train": 7000, "test": 3000}


def test_bts_log_estimates_the_random_policy_within_error():
    """On Thompson-sampling logs, the uniform policy's IPW and DR estimates agree with the
    on-policy CTR of the separate random log (obp's real-data check) within 3 standard errors."""
    cfg = parse_config({"offline": {"dataset": "obp", "behavior_policy": "bts"}})
    check = evaluate(cfg)["uniform_random_check"]
    truth = check["on_policy_ctr_of_random_log"]
    for name in ("ipw", "dr"):
        est = check[name]
        assert abs(est["value"] - truth) < 3 * est["stderr"] + 1e-12


def test_rank_policy_is_the_device_auction():
    logits = np.log(np.array([[[0.1], [0.5], [0.3], [0.2]]]).repeat(3, axis=2))
    cfg = parse_config({"offline": {"policy": "rank"}}).offline
    dist = agent_policy(logits, cfg, RunSeeds(0).generator("offline"))
    # positions get the items in predicted-CTR order: 1, 2, 3
    assert dist[0].argmax(axis=0).tolist() == [1, 2, 3]
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    soft = agent_policy(logits, parse_config({}).offline, RunSeeds(0).generator("offline"))
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert soft[0, :, 0].argmax() == 1


def test_cli_run_writes_an_offline_summary(tmp_path):
    args = ["run", "-o", str(tmp_path), "-c", "offline.dataset=obp", "-c", "offline.policy=rank"]
    assert main([*args, "-c", "name=obd", "-c", "offline.campaign=men"]) == 0
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["campaign"] == "men" and summary["agent_policy"]["policy"] == "rank"
    assert set(summary["agent_policy"]) >= {"ipw", "dm", "dr"}
    assert (run / "config.toml").is_file()
    # the same config gives the same numbers
    assert (
        evaluate(
            parse_config({"offline": {"dataset": "obp", "campaign": "men", "policy": "rank"}})
        )["agent_policy"]
        == summary["agent_policy"]
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("offline.dataset", "criteo"),
        ("offline.behavior_policy", "greedy"),
        ("offline.test_size", 1.0),
        ("offline.temperature", 0),
    ],
)
def test_bad_offline_config_names_the_key(key, value):
    section, leaf = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({section: {leaf: value}})
