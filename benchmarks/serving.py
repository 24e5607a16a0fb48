"""Load test of ``fedadagent serve``: decisions/s and latency by concurrency, memory per user.

Starts the node (``python -m economy.cli serve``, a fresh event store in a temp folder) on
127.0.0.1, serving ``--run`` or, by default, a run folder made here: the default config
(MiniLM agent, its untrained adapter + head: what the embedded default serves) with 800
advertisers, so that the node's catalogue holds 800 ads. It hosts ``--users`` users
(``--events`` events each, posted through ``POST /events``), warms up, then for each body kind
and concurrency level runs a closed loop of ``--concurrency`` connections for at most
``--seconds`` seconds or ``--requests`` requests: each request a decision over 100 candidates
or, with probability ``--event-share``, an event. Body kinds (``--bodies``): ``texts``, 100
full candidates (ad texts from 800 product texts, random bids; about 9 KB of JSON), and
``ids``, 100 random ad ids of the node's catalogue (``"ad_ids"``, the catalogue's bids; about
1 KB). Reported per kind and level: requests/s, decisions/s, decision latency p50/p95/p99 (ms,
on the client: queueing included), errors, the CPU of the server and of this load generator
(cores), and the server's CPU time per request (us: what the shared machine's load changes
least). Memory per hosted user: the server's resident memory growth while
``--more-users`` further users are added, over their number.

The load generator is asyncio on uvloop over keep-alive connections, each request's bytes
(head and body) built before the clock starts and httptools parsing the responses, so it costs
the shared cores as little as a Python client can; the server and the client share this
machine's cores (``os.cpu_count()`` in the JSON). An in-process profile of one decision's
stages (parse, score, auction, encode) shows where the server's time goes.

    bash .ci/env python benchmarks/serving.py [--quick] [--run RUN_DIR] [--bodies texts ids]
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
import uvloop

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


def decision_bodies(
    rng: np.random.Generator, users: int, n: int, kind: str, ad_ids: list[str]
) -> list[bytes]:
    """``n`` ``POST /decide`` bodies: a random hosted user and 100 distinct candidates, as full
    ads (``kind`` ``"texts"``: random products, random bids) or as ids of the node's
    catalogue (``"ids"``: ``ad_ids`` drawn from the catalogue's ids, its bids)."""
    texts = product_texts()
    bodies = []
    for _ in range(n):
        body: dict[str, Any] = {"user": f"u{rng.integers(users)}", "slot": "feed"}
        if kind == "ids":
            picks = rng.choice(len(ad_ids), CANDIDATES, replace=False)
            body["ad_ids"] = [ad_ids[i] for i in picks.tolist()]
        else:
            picks = rng.choice(len(texts), CANDIDATES, replace=False)
            bids = rng.uniform(0.1, 2.0, CANDIDATES)
            body["candidates"] = [
                {"ad_id": f"ad{i}", "text": texts[i], "bid": round(float(b), 4)}
                for i, b in zip(picks.tolist(), bids, strict=True)
            ]
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


def post(path: str, body: bytes) -> bytes:
    """The whole HTTP/1.1 request (head + body), built once, sent as it is."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


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

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request (its bytes from :func:`post`), read its response: (status, body)."""
        self.writer.write(raw)
        self._body, self._done = [], False
        while not self._done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._parser.feed_data(data)
        return self._parser.get_status_code(), b"".join(self._body)

    def close(self) -> None:
        self.writer.close()


async def post_all(port: int, path: str, bodies: list[bytes], concurrency: int) -> int:
    """POST every body to ``path`` over ``concurrency`` connections; the number refused."""
    queue = [post(path, b) for b in reversed(bodies)]
    refused = 0

    async def worker() -> None:
        nonlocal refused
        conn = await Connection.open(port)
        while queue:
            status, _ = await conn.request(queue.pop())
            refused += status != 200
        conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return refused


async def closed_loop(
    port: int,
    decisions: list[bytes],
    events: list[bytes],
    kinds: list[bool],
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request when the last is answered,
    until ``seconds`` pass or every request of ``kinds`` (True: an event) is sent; request
    bytes from :func:`post`; latencies in ms per kind."""
    sent = 0
    lat: dict[bool, list[float]] = {False: [], True: []}
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal sent, errors
        conn = await Connection.open(port)
        while sent < len(kinds) and time.perf_counter() < stop:
            i = sent
            sent += 1
            is_event = kinds[i]
            raw = events[i % len(events)] if is_event else decisions[i % len(decisions)]
            t0 = time.perf_counter()
            status, _ = await conn.request(raw)
            lat[is_event].append((time.perf_counter() - t0) * 1e3)
            errors += status != 200
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"wall": wall, "decisions": lat[False], "events": lat[True], "errors": errors}


def make_run(root: Path) -> Path:
    """A run folder the node can serve: the default config (MiniLM, untrained adapter + head,
    as the embedded default) with 800 advertisers: a catalogue of 800 ads to pick ids from."""
    from economy.config import parse_config
    from economy.rundir import create_run_dir

    cfg = parse_config(
        {
            "agents": {"scorer": "lm"},
            "federated": {"every": 0},
            "market": {"advertisers": 800},
            "output_dir": str(root),
        }
    )
    return create_run_dir(cfg)


def start_server(run: Path, store: Path, port: int) -> subprocess.Popen[bytes]:
    """The node in its own process (one thread for numpy/torch: the cores are shared)."""
    cmd = [sys.executable, "-m", "economy.cli", "serve", str(run), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([*cmd, "--store", str(store)], env=env, cwd=root)
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


def profile_stages(
    bodies: dict[str, list[bytes]], node: Any, users: int, n: int
) -> dict[str, float]:
    """Median microseconds per decision of each stage of the server's path, in this process
    (no HTTP): decode + validate the body (texts and ids), candidates to columns, decide one
    at a time, decide 8 at a time (one batched auction, per decision), encode the response."""
    import msgspec

    from economy.edge.app import _columns
    from economy.edge.schemas import decode_decide
    from economy.edge.store import StoredEvent

    texts = product_texts()
    for u in range(users):
        node.apply(StoredEvent(u, f"u{u}", "view", texts[u % len(texts)], 0.0))
    encode = msgspec.json.Encoder().encode
    stages = ("parse_texts", "parse_ids", "columns", "decide_1", "decide_8", "encode")
    times: dict[str, list[float]] = {k: [] for k in stages}
    decisions = bodies["texts"]
    for rep in range(2):  # the first pass embeds every text once
        for lo in range(0, n, 8):
            t0 = time.perf_counter()
            reqs = [decode_decide(b) for b in decisions[lo : lo + 8]]
            t1 = time.perf_counter()
            for b in bodies["ids"][lo : lo + 8]:
                decode_decide(b)
            t2 = time.perf_counter()
            asks = [_columns(r.user, r.candidates, r.reserve) for r in reqs]
            t3 = time.perf_counter()
            for ask in asks:
                node.decide_many([ask])
            t4 = time.perf_counter()
            out = node.decide_many(asks)
            t5 = time.perf_counter()
            for d, r in zip(out, reqs, strict=True):
                encode({"ad_id": d.winner, "price": d.price, "slot": r.slot})
            t6 = time.perf_counter()
            if rep:
                marks = (t0, t1, t2, t3, t4, t5, t6)
                for k, a, b in zip(stages, marks, marks[1:], strict=False):
                    times[k].append((b - a) / len(asks))
    return {k: float(np.median(v) * 1e6) for k, v in times.items()}


def traced_bytes_per_user(node: Any, rng: np.random.Generator, args: argparse.Namespace) -> float:
    """Bytes the node allocates (tracemalloc: Python objects and numpy buffers) per user it
    adds: ``--more-users`` users with ``--events`` events each and their context vectors; the
    event texts are embedded once before the count (a text's embedding is shared, not a
    user's). The resident-set measure over HTTP is at the allocator's noise."""
    import tracemalloc

    from economy.edge.store import StoredEvent

    more = range(args.users, args.users + args.more_users)
    events = [json.loads(b) for b in event_bodies(rng, more, args.events)]
    node.model.backbone.embed(sorted({e["text"] for e in events}))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for seq, e in enumerate(events):
        node.apply(StoredEvent(seq, e["user"], e["kind"], e["text"], e["time"]))
    for u in more:
        node.context_vector(f"u{u}")
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / args.more_users


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="serve this run folder (default: one made here)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--events", type=int, default=5, help="events per user at the start")
    ap.add_argument("--more-users", type=int, default=2000, help="added to measure memory")
    ap.add_argument("--bodies", nargs="+", choices=("texts", "ids"), default=["texts", "ids"])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--seconds", type=float, default=4.0, help="per level, at most")
    ap.add_argument("--requests", type=int, default=60_000, help="per level, at most")
    ap.add_argument("--event-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--client-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the load generator's event loop (asyncio: to see what uvloop saves it)",
    )
    ap.add_argument("--quick", action="store_true", help="small: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.users, args.more_users, args.seconds, args.concurrency = 100, 200, 2.0, [1, 8]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else make_run(Path(tmp) / "runs")
        rows, memory, stages = measure(args, run, Path(tmp) / "edge")
    load = os.getloadavg()
    report(args, rows, memory, stages, load_before, load)


def measure(
    args: argparse.Namespace, run: Path, store: Path
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, float]]:
    """Profile the stages in-process, then start the server and drive it over HTTP."""
    from economy.serve import open_node

    rng = np.random.default_rng(args.seed)
    node, profile_store = open_node(run, store.with_name("profile"))
    try:
        ad_ids = [a.ad_id for a in node.catalogue.ads]
        bodies = {k: decision_bodies(rng, args.users, 400, k, ad_ids) for k in ("texts", "ids")}
        stages = profile_stages(bodies, node, args.users, 200)
        traced = traced_bytes_per_user(node, rng, args)
    finally:
        profile_store.close()
    del node
    events = event_bodies(rng, range(args.users), 2)  # later events of hosted users
    port = free_port()
    server = start_server(run, store, port)
    proc = psutil.Process(server.pid)
    try:
        factory = uvloop.new_event_loop if args.client_loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            rows, memory = runner.run(drive(args, port, proc, bodies, events, rng))
        memory["traced_bytes_per_user"] = traced
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows, memory, stages


def report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    memory: dict[str, float],
    stages: dict[str, float],
    load_before: tuple[float, ...],
    load: tuple[float, ...],
) -> None:
    """Print the table, the memory and stage lines, the machine note; write the JSON."""
    print_table(rows, list(rows[0]))
    print(
        f"memory per hosted user ({args.events} events each): {memory['per_user_bytes']:,.0f} "
        f"bytes of server RSS growth; server RSS {memory['rss_mb']:.0f} MB at "
        f"{memory['users']} users; in-process (tracemalloc) "
        f"{memory['traced_bytes_per_user']:,.0f} bytes per added user"
    )
    print(
        "decision stages in-process (median us): "
        + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
    )
    print(machine_note(load_before, load))
    print("command: " + " ".join(["python", *sys.argv]))
    verdict: dict[str, Any] = {}
    for kind in args.bodies:
        mine = [r for r in rows if r["body"] == kind]
        best = max(mine, key=lambda r: r["decisions_per_s"])
        ok = [r for r in mine if r["p95_ms"] <= 25.0]
        verdict[kind] = {
            "peak_decisions_per_s": best["decisions_per_s"],
            "peak_at_concurrency": best["concurrency"],
            "best_within_p95_25ms": max((r["decisions_per_s"] for r in ok), default=0.0),
            "target_3000_at_p95_25ms": any(r["decisions_per_s"] >= 3000 for r in ok),
        }
    print(verdict)
    payload = {
        "args": vars(args),
        "command": sys.argv,
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
    bodies: dict[str, list[bytes]],
    events: list[bytes],
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Host the users, warm up, run every body kind and level, then measure memory per added
    user."""
    hosting = event_bodies(rng, range(args.users), args.events)
    refused = await post_all(port, "/events", hosting, 16)
    if refused:
        raise RuntimeError(f"{refused} events refused while hosting the users")
    raw_events = [post("/events", b) for b in events]
    rows = []
    for kind in args.bodies:
        raw = [post("/decide", b) for b in bodies[kind]]
        await closed_loop(port, raw, raw_events, [False] * len(raw), 4, 30.0)  # warm
        for level in args.concurrency:
            kinds = (rng.random(args.requests) < args.event_share).tolist()
            cpu0, me0, t0 = proc.cpu_times(), time.process_time(), time.perf_counter()
            out = await closed_loop(port, raw, raw_events, kinds, level, args.seconds)
            cpu1, me1, t1 = proc.cpu_times(), time.process_time(), time.perf_counter()
            d, n = out["decisions"], len(out["decisions"]) + len(out["events"])
            server = cpu1.user + cpu1.system - cpu0.user - cpu0.system  # CPU seconds
            rows.append(
                {
                    "body": kind,
                    "concurrency": level,
                    "requests": n,
                    "req_per_s": n / out["wall"],
                    "decisions_per_s": len(d) / out["wall"],
                    "p50_ms": percentile(d, 50),
                    "p95_ms": percentile(d, 95),
                    "p99_ms": percentile(d, 99),
                    "event_p95_ms": percentile(out["events"], 95),
                    "errors": out["errors"],
                    "server_cpu": server / (t1 - t0),
                    "server_us_per_req": server / n * 1e6,
                    "client_cpu": (me1 - me0) / (t1 - t0),
                }
            )
    rss0 = proc.memory_info().rss
    more = range(args.users, args.users + args.more_users)
    await post_all(port, "/events", event_bodies(rng, more, args.events), 16)
    # each new user's context vector is made on its first decision: ask one per new user
    asks = [json.dumps({"user": f"u{u}", "query": {"limit": 1}}).encode() for u in more]
    await post_all(port, "/decide", asks, 1)
    rss1 = proc.memory_info().rss
    memory = {
        "per_user_bytes": (rss1 - rss0) / args.more_users,
        "rss_mb": rss1 / 2**20,
        "users": args.users + args.more_users,
    }
    return rows, memory


if __name__ == "__main__":
    main()
