"""The Deployment Engine for real: flower-superlink + 3 flower-supernode processes on 127.0.0.1.

Runs the project's app for 2 rounds with ``flwr run``, checks the result, and stops every
process it started (by PID and process group, since SuperLink and SuperNodes spawn the
ServerApp/ClientApp processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{path.name} never said {text!r}:\n{path.read_text(errors='replace')}")


def processes_mentioning(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
    return found


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flwr", path=str(BIN)) is None, reason="flwr CLI not installed")
def test_two_rounds_on_superlink_and_three_supernodes(tmp_path):
    env = {
        **os.environ,
        "FLWR_HOME": str(tmp_path / "flwr"),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        # SuperLink and SuperNodes start flower-superexec and the apps by name
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    link = free_port()
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "config.toml").write_text(
        f'[superlink]\ndefault = "deploy"\n\n[superlink.deploy]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    procs: list[subprocess.Popen] = []
    ports = [link]

    def spawn(name: str, *args: str) -> Path:
        log = tmp_path / f"{name}.log"
        procs.append(
            subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
                start_new_session=True,
            )
        )
        return log

    try:
        link_log = spawn(
            "superlink",
            "flower-superlink",
            "--insecure",
            "--port",
            str(link),
            "--database",
            str(tmp_path / "state.db"),
        )
        wait_for(link_log, "Uvicorn running", 60)
        for i in range(3):
            spawn(
                f"node{i}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link}",
                "--port",
                str(free_port()),
                "--node-config",
                f"partition-id={i} num-partitions=3",
            )
        for _ in range(120):  # all three nodes activated
            if link_log.read_text(errors="replace").count("Activated node_id") >= 3:
                break
            time.sleep(0.5)
        out = tmp_path / "result.json"
        run = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(ROOT),
                "deploy",
                "--stream",
                "-c",
                f"num-server-rounds=2 num-nodes=3 output='{out}'",
            ],
            env=env,
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
        assert sorted(result["evaluate"]) == ["1", "2"]
        assert result["evaluate"]["2"]["ndcg@10"] > 0.6
    finally:
        stop(procs)

        # What the SuperLink/SuperNodes detached (SuperExec, apps) names one of our ports.
        def leftovers() -> list[int]:
            return [pid for port in ports for pid in processes_mentioning(f":{port}")]

        deadline = time.monotonic() + 20
        while leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert all(p.poll() is not None for p in procs)
    assert not leftovers()
