"""The Deployment Engine for real: flower-superlink + 3 flower-supernode processes on 127.0.0.1.

Runs the project's app for 2 rounds with ``flwr run``, checks the result, and stops every
process it started (by PID and process group, since SuperLink and SuperNodes spawn the
ServerApp/ClientApp processes; ``tests/flower_procs.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from flower_procs import BIN, deployment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flwr", path=str(BIN)) is None, reason="flwr CLI not installed")
def test_two_rounds_on_superlink_and_three_supernodes(tmp_path):
    with deployment(tmp_path / "flwr", nodes=3) as dep:
        out = tmp_path / "result.json"
        run = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(ROOT),
                dep.federation,
                "--stream",
                "-c",
                f"num-server-rounds=2 num-nodes=3 output='{out}'",
            ],
            env=dep.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        for _ in range(60):  # the ServerApp process writes the result as it finishes
            if out.exists():
                break
            time.sleep(0.5)
        result = json.loads(out.read_text())
        assert sorted(result["evaluate"]) == ["0", "1", "2"]  # round 0: before training
        assert result["num_nodes"] == 3
        assert result["evaluate"]["2"]["ndcg@10"] > 0.6
