"""The whole system at test size: the market's LM agents trained through Flower rounds (the
Simulation Engine, one node per user), valued and paid in tokens into the run's ledger."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pld

from economy.cli import main
from economy.config import parse_config
from economy.rundir import CHECKPOINT, DEVICES, LEDGER, PLOTS, SUMMARY, create_run_dir
from economy.runner import resume_market, run_market
from economy.seeding import RunSeeds
from economy.world import make_world
from incentives import Ledger

FED = {
    "name": "fed",
    "seed": 3,
    "agents": {"scorer": "lm", "model": "tiny-encoder"},
    "world": {"history": 5},
    "market": {"users": 8, "advertisers": 5, "steps": 4, "impressions_per_user": 3},
    "federated": {
        "every": 2,
        "clients_per_round": 3,
        "valuation_budget": 8,
        "batch_size": 4,
        "lr": 0.02,
        "clipping_norm": 1.0,
        "noise_multiplier": 1.0,
        "adopt": "always",  # the noise test below measures every round's aggregate
    },
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def federated_run(tmp_path_factory):
    """(run folder, per step: every agent's adapter version) of one federated run."""
    versions: list[set[str]] = []
    states: list[dict[str, np.ndarray]] = []

    def on_step(state) -> None:
        versions.append({a.version for a in state.lm.agents})
        states.append(state.lm.agents[0].state())

    cfg = parse_config({**FED, "output_dir": str(tmp_path_factory.mktemp("fed"))})
    run = run_market(cfg, on_step=on_step)
    # DP-FedAvg: the mean of k updates clipped to C moves the P weights by at most C in L2,
    # and the server adds N(0, (z C / k)^2) to every weight: the change is the noise, with
    # the std of k = the replies actually averaged (not the number asked)
    k = [int(r["fed_clients"]) for r in csv.DictReader((run / "metrics.csv").open())][1]
    change = np.concatenate([(states[1][key] - states[0][key]).ravel() for key in states[0]])
    f = cfg.federated
    assert change.std() == pytest.approx(f.noise_multiplier * f.clipping_norm / k, rel=0.05)
    return run, versions


def test_rounds_ran_through_flower_and_changed_the_one_global_adapter(federated_run):
    run, versions = federated_run
    summary = json.loads((run / SUMMARY).read_text())
    assert summary["agents"] == {"scorer": "lm", "model": "tiny-encoder"}
    records = summary["federated"].pop("round_records")
    assert summary["federated"] == {
        "engine": "simulation",
        "rounds": 2,
        "adopted": 2,
        "strategy": "fedavg",
    }
    assert [(r["round"], r["step"], r["adopted"]) for r in records] == [(1, 1, True), (2, 3, True)]
    assert all(len(v) == 1 for v in versions)  # every agent holds the one global state
    # rounds after steps 2 and 4 (federated.every = 2): the adapter changed exactly then
    assert versions[1] != versions[0] and versions[2] == versions[1]
    assert versions[3] != versions[2]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["fed_clients"]) > 0 for r in rows] == [False, True, False, True]


def test_tokens_went_to_the_devices_that_trained_and_the_ledger_verifies(federated_run):
    run, _ = federated_run
    summary = json.loads((run / SUMMARY).read_text())
    with Ledger(run / LEDGER) as ledger:
        check = ledger.verify()
        balances = ledger.balances()
        seq, digest = ledger.head()
    assert check.ok and summary["ledger"]["verified"] is True
    assert summary["ledger"]["head"] == f"{seq}:{digest}"
    trained = {p.name.removeprefix("device-") for p in (run / DEVICES).iterdir()}
    paid = {a.removeprefix("user-") for a, b in balances.items() if b > 0}
    assert paid and paid <= trained  # only devices that trained were paid
    assert summary["tokens"]["contributors"] == len(paid)
    assert summary["tokens"]["paid"] == pytest.approx(sum(balances.values()), abs=1e-5)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    revenue = np.cumsum([float(r["revenue"]) for r in rows])
    # rewards never exceed the revenue share of the steps that funded them
    assert summary["tokens"]["paid"] <= FED["federated"].get("revenue_share", 0.05) * revenue[-1]
    # the pool is sized from revenue: each round pays revenue_share x the revenue since the
    # last round when its value is positive, and its record says why when it pays nothing
    records = summary["federated"]["round_records"]
    funded = [float(r["revenue"]) for r in rows]
    assert [r["revenue"] for r in records] == pytest.approx([sum(funded[:2]), sum(funded[2:])])
    for r in records:
        assert r["pool"] == pytest.approx(0.05 * r["revenue"])
        positive = any(d["value"] > 0 for d in r["devices"])
        assert r["paid"] == pytest.approx(r["pool"] if positive else 0.0, abs=1e-5)
        assert (r["zero_pay_reason"] is None) == (r["paid"] > 0)
        # 'auto' with 3 devices and a budget of 8 evaluations: all 2^3 coalitions, exact
        assert r["valuation"]["method"] == "exact" and r["valuation"]["evaluations"] <= 8
        assert {d["user"] for d in r["devices"]} == set(r["accepted"]) <= set(r["chosen"])
        assert all(d["epsilon"] > 0 for d in r["devices"])  # the round's cost, next to its pay
    per_user: dict[str, float] = {}
    for d in (d for r in records for d in r["devices"]):
        per_user[f"user-{d['user']}"] = per_user.get(f"user-{d['user']}", 0.0) + d["tokens"]
    assert {a: b for a, b in per_user.items() if b > 0} == pytest.approx(
        {a: b for a, b in balances.items() if b > 0}, abs=1e-5
    )
    t = summary["tokens"]
    took_part = {u for r in records for u in r["accepted"]}
    assert t["participants"] == len(took_part) and t["participation"] == len(took_part) / 8
    assert t["zero_pay_rounds"] == sum(r["paid"] == 0 for r in records)
    assert main(["report", str(run)]) == 0  # token Lorenz curve from the ledger, ranking quality
    assert {"lorenz.png", "ndcg.png"} <= {p.name for p in (run / PLOTS).iterdir()}


def test_privacy_is_per_user_and_composed_over_the_run(federated_run):
    """Every user's epsilon is the PLD composition of what it took part in: one Laplace trend
    share (step 0) and one Gaussian mechanism per round its update was averaged into."""
    run, _ = federated_run
    summary = json.loads((run / SUMMARY).read_text())
    p = summary["privacy"]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    averaged = sum(int(r["fed_clients"]) for r in rows)
    users = FED["market"]["users"]
    assert p["uses"] == {"trend share (Laplace)": users, "federated round (DP-FedAvg)": averaged}
    assert p["unit"] == "user" and p["budget"] == 8.0 and p["delta"] == 1e-5

    def epsilon(rounds: int) -> float:  # Google's dp-accounting, composed here by hand
        share = pld.from_laplace_mechanism(2.0, sensitivity=1.0, value_discretization_interval=1e-3)
        if rounds:
            one = pld.from_gaussian_mechanism(1.0, value_discretization_interval=1e-3)
            share = share.compose(one.self_compose(rounds))
        return share.get_epsilon_for_delta(1e-5)

    # 2 rounds of 3 among 8 users: some users were in no round, none in more than 2
    assert any(p["epsilon_median"] == pytest.approx(epsilon(r), rel=1e-3) for r in (0, 1))
    assert any(p["epsilon_max"] == pytest.approx(epsilon(r), rel=1e-3) for r in (1, 2))
    assert p["epsilon_max"] <= p["budget"] and p["epsilon_rdp_max"] >= p["epsilon_max"] - 1e-3
    # a device's store holds what its accountant had composed before its last round
    spent = [json.loads((d / "budget.json").read_text()) for d in (run / DEVICES).iterdir()]
    assert all(b["total"] == 8.0 and b["spent"] < p["epsilon_max"] for b in spent)
    assert 0 <= summary["quality"]["ndcg10"] <= 1


def test_interrupted_federated_run_resumes_to_the_same_results(federated_run, tmp_path):
    reference, _ = federated_run
    cfg = parse_config({**FED, "output_dir": str(tmp_path)})
    run = create_run_dir(cfg)

    def stop(state):
        if state.step == 3:
            raise KeyboardInterrupt

    # checkpoints every 2 steps: the one after step 2 holds round 1's payments
    with pytest.raises(KeyboardInterrupt):
        run_market(cfg, run, on_step=stop, checkpoint_every=2)
    assert (run / CHECKPOINT).is_file() and not (run / SUMMARY).exists()
    assert_no_history_outside_devices(run, cfg)  # interrupted, with its checkpoint
    resume_market(run)
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()
    assert_no_history_outside_devices(run, cfg)  # finished


def assert_no_history_outside_devices(run, cfg) -> None:
    """A run folder without its private devices/ folder (mode 0700) can be shared: no file
    holds any user's history text, in any encoding a writer here uses."""
    texts = {t for h in make_world(cfg, RunSeeds(cfg.seed)).texts.histories for _, t, _ in h}
    assert texts and (run / DEVICES).is_dir() and (run / DEVICES).stat().st_mode & 0o077 == 0
    shared = [p for p in run.rglob("*") if p.is_file() and DEVICES not in p.relative_to(run).parts]
    private = b"".join(p.read_bytes() for p in (run / DEVICES).rglob("*") if p.is_file())
    assert shared and any(json.dumps(t).encode() in private for t in texts)  # the search works
    for path in shared:
        data = path.read_bytes()
        if path.suffix == ".npz":  # arrays of strings would be stored as UTF-32
            with np.load(path, allow_pickle=False) as z:
                data += b"".join(z[k].tobytes() for k in z.files)
        for text in texts:
            for form in (text.encode(), text.encode("utf-32-le"), json.dumps(text).encode()):
                assert form not in data, (path.name, text)
