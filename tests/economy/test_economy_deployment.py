"""The economy on Flower's Deployment Engine for real: ``fedadagent run`` with
``federated.engine = "deployment"`` submits the run folder to a flower-superlink on 127.0.0.1
with 2 flower-supernode processes (one device per market user); the market runs in the
SuperLink's ServerApp process (``economy.flower_app``), the devices train in the SuperNodes'
ClientApp processes from their stores. Every process started is stopped
(``tests/flower_procs.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import tomli_w
from flower_procs import BIN, deployment, stop

from economy.rundir import CHECKPOINT


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flwr", path=str(BIN)) is None, reason="flwr CLI not installed")
def test_market_runs_on_superlink_and_two_supernodes(tmp_path):
    with deployment(tmp_path / "flwr", nodes=2, federation="economy") as dep:
        config = {
            "name": "dep",
            "seed": 1,
            "agents": {"scorer": "lm", "model": "tiny-encoder"},
            "world": {"history": 5},
            "market": {"users": 2, "advertisers": 3, "steps": 2, "impressions_per_user": 3},
            "federated": {
                "every": 1,
                "clients_per_round": 2,
                "valuation_budget": 4,
                "batch_size": 2,
                "engine": "deployment",
                "federation": dep.federation,
            },
        }
        (tmp_path / "dep.toml").write_text(tomli_w.dumps(config))
        runs = tmp_path / "runs"
        command = ["run", str(tmp_path / "dep.toml"), "-o", str(runs), "--no-progress"]
        cli = subprocess.Popen(
            [str(BIN / "fedadagent"), *command],
            env=dep.env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its `flwr run` child is stopped with it
        )
        try:
            stdout, stderr = cli.communicate(timeout=600)
        finally:
            stop([cli])
        said = f"{stdout[-4000:]}\n{stderr[-4000:]}\n{dep.logs()}"
        assert cli.returncode == 0, said
        for node in (0, 1):  # the devices answered and trained on the SuperNodes, not elsewhere
            log = (dep.folder / f"node{node}.log").read_text(errors="replace")
            assert "Receiving: query message" in log, said
            assert "Receiving: train message" in log, said
        (run,) = runs.iterdir()
        assert (run / "summary.json").is_file(), said
        summary = json.loads((run / "summary.json").read_text())
        assert summary["federated"]["engine"] == "deployment"
        assert summary["federated"]["rounds"] >= 1
        assert summary["ledger"]["verified"] is True
        # tokens go only to devices that trained (whether a round's noisy updates earn any is
        # the valuation's call: test_economy_federated checks a paying run)
        assert summary["tokens"]["contributors"] <= 2
        assert not (run / CHECKPOINT).exists()  # every step ran (removed when complete)
        assert summary["privacy"]["epsilon_max"] <= summary["privacy"]["budget"] == 8.0
        for device in (0, 1):  # what the user's accountant had composed before its last round
            budget = json.loads((run / "devices" / f"device-{device}" / "budget.json").read_text())
            assert 0 < budget["spent"] <= budget["total"] == 8.0
