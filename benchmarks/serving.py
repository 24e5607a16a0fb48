"""Load test of ``fedadagent serve``: decisions/s and latency by concurrency, memory per user.

Starts the node (``python -m economy.cli serve``, the embedded MiniLM agent unless ``--run``
names a run folder, a fresh event store in a temp folder) on 127.0.0.1, hosts ``--users``
users (``--events`` events each, posted through ``POST /events``), warms up, then at each
concurrency level runs a closed loop of ``--concurrency`` connections for at most
``--seconds`` seconds or ``--requests`` requests: each request a decision over 100 candidates
(ad texts from a catalogue of 800 products, random bids) or, with probability ``--event-share``,
an event. Reported per level: requests/s, decisions/s, decision latency p50/p95/p99 (ms, on the
client: queueing included), errors, and the server's CPU use. Memory per hosted user: the
server's resident memory growth while ``--more-users`` further users are added, over their
number.

The client is asyncio over keep-alive connections with httptools parsing the responses and
request bodies built before the clock starts, so it costs the shared cores as little as a
Python client can; the server and the client share this machine's cores (``os.cpu_count()``
in the JSON). An in-process profile of one decision's stages (parse, score, auction, encode)
shows where the server's time goes.

    bash .ci/env python benchmarks/serving.py [--quick] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httptools
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import machine_note, print_table, write_json
from economy.world import synthetic_catalogue

HOST = "127.0.0.1"
CANDIDATES = 100


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def product_texts() -> list[str]:
    """800 product texts (100 categories x 8 styles) of the synthetic catalogue."""
    _, products = synthetic_catalogue(100)
    return [text for group in products for text in group]


def decision_bodies(rng: np.random.Generator, users: int, n: int) -> list[bytes]:
    """``n`` ``POST /decide`` bodies: a random hosted user, 100 distinct random products."""
    texts = product_texts()
    bodies = []
    for _ in range(n):
        picks = rng.choice(len(texts), CANDIDATES, replace=False)
        bids = rng.uniform(0.1, 2.0, CANDIDATES)
        cands = [
            {"ad_id": f"ad{i}", "text": texts[i], "bid": round(float(b), 4)}
            for i, b in zip(picks.tolist(), bids, strict=True)
        ]
        body = {"user": f"u{rng.integers(users)}", "slot": "feed", "candidates": cands}
        bodies.append(json.dumps(body).encode())
    return bodies


def event_bodies(rng: np.random.Generator, users: range, per_user: int) -> list[bytes]:
    """``per_user`` view/click/purchase events of every user in ``users`` (product texts)."""
    texts, kinds = product_texts(), ("view", "view", "click", "purchase")
    return [
        json.dumps(
            {
                "user": f"u{u}",
                "kind": kinds[rng.integers(len(kinds))],
                "text": texts[rng.integers(len(texts))],
                "time": 3600.0 * k,
            }
        ).encode()
        for u in users
        for k in range(per_user)
    ]


class Connection:
    """One keep-alive HTTP/1.1 connection; responses parsed by httptools."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._body: list[bytes] = []
        self._done = False
        self._parser = httptools.HttpResponseParser(self)

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done = True

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request, read its response: (status, body)."""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        self._body, self._done = [], False
        while not self._done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._parser.feed_data(data)
        return self._parser.get_status_code(), b"".join(self._body)

    def close(self) -> None:
        self.writer.close()


async def post_all(port: int, bodies: list[bytes], concurrency: int) -> int:
    """POST every body to /events over ``concurrency`` connections; the number refused."""
    queue = list(reversed(bodies))
    refused = 0

    async def worker() -> None:
        nonlocal refused
        conn = await Connection.open(port)
        while queue:
            status, _ = await conn.request("POST", "/events", queue.pop())
            refused += status != 200
        conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return refused


async def closed_loop(
    port: int,
    decisions: list[bytes],
    events: list[bytes],
    event_share: float,
    concurrency: int,
    seconds: float,
    max_requests: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request when the last is answered,
    until ``seconds`` pass or ``max_requests`` are sent; latencies in ms per kind."""
    kinds = (rng.random(max_requests) < event_share).tolist()
    sent = 0
    lat: dict[bool, list[float]] = {False: [], True: []}
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal sent, errors
        conn = await Connection.open(port)
        while sent < max_requests and time.perf_counter() < stop:
            i = sent
            sent += 1
            is_event = kinds[i]
            body = events[i % len(events)] if is_event else decisions[i % len(decisions)]
            t0 = time.perf_counter()
            status, _ = await conn.request("POST", "/events" if is_event else "/decide", body)
            lat[is_event].append((time.perf_counter() - t0) * 1e3)
            errors += status != 200
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"wall": wall, "decisions": lat[False], "events": lat[True], "errors": errors}


def start_server(run: str | None, store: Path, port: int) -> subprocess.Popen[bytes]:
    """The node in its own process (one thread for numpy/torch: the cores are shared)."""
    cmd = [sys.executable, "-m", "economy.cli", "serve", "--port", str(port), "--store", str(store)]
    if run:
        cmd.insert(4, run)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not listen within 180 s")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def profile_stages(decisions: list[bytes], run: str | None, users: int, n: int) -> dict[str, float]:
    """Median microseconds per decision of each stage of the server's path, in this process
    (no HTTP): parse + validate the body, candidates to columns, decide one at a time, decide
    8 at a time (one batched auction, per decision), encode the response."""
    from economy.edge.app import _columns
    from economy.edge.schemas import DecideRequest
    from economy.edge.store import StoredEvent
    from economy.serve import open_node

    texts = product_texts()
    with tempfile.TemporaryDirectory() as tmp:
        node, store = open_node(Path(run) if run else None, Path(tmp) / "edge")
        try:
            for u in range(users):
                node.apply(StoredEvent(u, f"u{u}", "view", texts[u % len(texts)], 0.0))
            stages = ("parse", "columns", "decide_1", "decide_8", "encode")
            times: dict[str, list[float]] = {k: [] for k in stages}
            for rep in range(2):  # the first pass embeds every text once
                for lo in range(0, n, 8):
                    t0 = time.perf_counter()
                    reqs = [DecideRequest.model_validate_json(b) for b in decisions[lo : lo + 8]]
                    t1 = time.perf_counter()
                    asks = [_columns(r.user, r.candidates, r.reserve) for r in reqs]
                    t2 = time.perf_counter()
                    for ask in asks:
                        node.decide_many([ask])
                    t3 = time.perf_counter()
                    out = node.decide_many(asks)
                    t4 = time.perf_counter()
                    for d, r in zip(out, reqs, strict=True):
                        json.dumps({"ad_id": d.winner, "price": d.price, "slot": r.slot}).encode()
                    t5 = time.perf_counter()
                    if rep:
                        marks = (t0, t1, t2, t3, t4, t5)
                        for k, a, b in zip(stages, marks, marks[1:], strict=False):
                            times[k].append((b - a) / len(asks))
            return {k: float(np.median(v) * 1e6) for k, v in times.items()}
        finally:
            store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="serve this run folder (default: embedded)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--events", type=int, default=5, help="events per user at the start")
    ap.add_argument("--more-users", type=int, default=2000, help="added to measure memory")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--seconds", type=float, default=6.0, help="per level, at most")
    ap.add_argument("--requests", type=int, default=60_000, help="per level, at most")
    ap.add_argument("--event-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.users, args.more_users, args.seconds, args.concurrency = 100, 200, 2.0, [1, 8]
    rng = np.random.default_rng(args.seed)
    decisions = decision_bodies(rng, args.users, 400)
    events = event_bodies(rng, range(args.users), 2)  # later events of hosted users
    load_before = os.getloadavg()
    stages = profile_stages(decisions, args.run, args.users, 200)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(args.run, Path(tmp) / "edge", port)
        proc = psutil.Process(server.pid)
        try:
            rows, memory = asyncio.run(drive(args, port, proc, decisions, events, rng))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    load = os.getloadavg()
    print_table(rows, list(rows[0]))
    print(
        f"memory per hosted user ({args.events} events each): {memory['per_user_bytes']:,.0f} "
        f"bytes; server RSS {memory['rss_mb']:.0f} MB at {memory['users']} users"
    )
    print(
        "decision stages in-process (median us): "
        + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
    )
    print(machine_note(load_before, load))
    best = max(rows, key=lambda r: r["decisions_per_s"])
    ok = [r for r in rows if r["p95_ms"] <= 25.0]
    verdict = {
        "peak_decisions_per_s": best["decisions_per_s"],
        "peak_at_concurrency": best["concurrency"],
        "best_within_p95_25ms": max((r["decisions_per_s"] for r in ok), default=0.0),
        "target_3000_at_p95_25ms": any(r["decisions_per_s"] >= 3000 for r in ok),
    }
    print(verdict)
    payload = {
        "args": vars(args),
        "rows": rows,
        "memory": memory,
        "stages_us": stages,
        "load_before": load_before,
        "load_after": load,
        **verdict,
    }
    print(f"wrote {write_json('serving_quick' if args.quick else 'serving', payload)}")


async def drive(
    args: argparse.Namespace,
    port: int,
    proc: psutil.Process,
    decisions: list[bytes],
    events: list[bytes],
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Host the users, warm up, run every level, then measure memory per added user."""
    refused = await post_all(port, event_bodies(rng, range(args.users), args.events), 16)
    if refused:
        raise RuntimeError(f"{refused} events refused while hosting the users")
    await closed_loop(port, decisions, events, 0.0, 4, 30.0, len(decisions), rng)  # warm
    rows = []
    for level in args.concurrency:
        cpu0, t0 = proc.cpu_times(), time.perf_counter()
        out = await closed_loop(
            port, decisions, events, args.event_share, level, args.seconds, args.requests, rng
        )
        cpu1, t1 = proc.cpu_times(), time.perf_counter()
        d = out["decisions"]
        rows.append(
            {
                "concurrency": level,
                "requests": len(d) + len(out["events"]),
                "req_per_s": (len(d) + len(out["events"])) / out["wall"],
                "decisions_per_s": len(d) / out["wall"],
                "p50_ms": percentile(d, 50),
                "p95_ms": percentile(d, 95),
                "p99_ms": percentile(d, 99),
                "event_p95_ms": percentile(out["events"], 95),
                "errors": out["errors"],
                "server_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0),
            }
        )
    rss0 = proc.memory_info().rss
    more = range(args.users, args.users + args.more_users)
    await post_all(port, event_bodies(rng, more, args.events), 16)
    # each new user's context vector is made on its first decision: ask one per new user
    bodies = [json.dumps({"user": f"u{u}", "query": {"limit": 1}}).encode() for u in more]
    conn = await Connection.open(port)
    for body in bodies:
        await conn.request("POST", "/decide", body)
    conn.close()
    rss1 = proc.memory_info().rss
    memory = {
        "per_user_bytes": (rss1 - rss0) / args.more_users,
        "rss_mb": rss1 / 2**20,
        "users": args.users + args.more_users,
    }
    return rows, memory


if __name__ == "__main__":
    main()
