"""``fedadagent serve`` as a real process: good and bad requests over HTTP, then a kill -9 and a
restart that loses no accepted event (tiny model; two server starts, well under a minute)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from economy.config import parse_config
from economy.edge import GLOBAL_MODEL
from economy.edge.model import load_served_model
from economy.rundir import create_run_dir
from economy.runner import run_market

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(run: Path, store: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "economy.cli", "serve", str(run), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--store", str(store)], cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not answer within 120 s")


@pytest.mark.slow  # two server processes (about 40 s on 2 shared cores)
def test_run_keeps_its_global_model_and_a_killed_node_loses_no_event(tmp_path):
    cfg = parse_config(
        {
            "agents": {"model": "tiny-encoder", "lora_rank": 2},
            "federated": {"every": 0},
            "market": {"users": 3, "advertisers": 5, "steps": 1, "impressions_per_user": 1},
            "output_dir": str(tmp_path),
        }
    )
    run = run_market(cfg, create_run_dir(cfg))
    assert (run / GLOBAL_MODEL).is_file()  # written when the run completed
    served, _ = load_served_model(run)
    assert all(np.isfinite(v).all() for v in served.state.values())

    store, port = tmp_path / "edge", free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(run, store, port)
    try:
        events = [
            {"user": f"u{i % 3}", "kind": kind, "text": text, "time": 60.0 * i}
            for i, (kind, text) in enumerate(
                [("view", "running shoes"), ("purchase", "coffee beans"), ("click", "a tent")] * 4
            )
        ]
        seqs = [httpx.post(f"{url}/events", json=e).json()["seq"] for e in events]
        assert seqs == list(range(len(events)))
        bad = httpx.post(f"{url}/events", json={**events[0], "time": "soon"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "time"
        bad = httpx.post(f"{url}/decide", json={"user": "u0", "query": {"limit": 2000}})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.limit"
        cands = [
            {"ad_id": f"a{i}", "text": t, "bid": 1.0 + 0.25 * i}
            for i, t in enumerate(["trail shoes", "dark roast coffee", "tent", "red dress"])
        ]
        before = [
            httpx.post(f"{url}/decide", json={"user": f"u{u}", "candidates": cands}).json()
            for u in range(3)
        ]
        health = httpx.get(f"{url}/health").json()
        assert (health["users"], health["events"]) == (3, len(events))
    finally:
        server.send_signal(signal.SIGKILL)  # no shutdown handler runs
        server.wait(30)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store / "events.jsonl").st_mode) == 0o600

    server = start(run, store, port)
    try:
        health = httpx.get(f"{url}/health").json()
        assert (health["users"], health["events"]) == (3, len(events))
        after = [
            httpx.post(f"{url}/decide", json={"user": f"u{u}", "candidates": cands}).json()
            for u in range(3)
        ]
        assert after == before  # the same contexts, rebuilt from the store
        seq = httpx.post(f"{url}/events", json=events[0]).json()["seq"]
        assert seq == len(events)  # numbering goes on after the replayed events
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
