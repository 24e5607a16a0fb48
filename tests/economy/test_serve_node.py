"""The edge node in-process: decisions as the agent's own, what a response may carry, bad
requests named, the served model, the write-ahead store, metrics (tiny model, seconds)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agents import Ad, Agent
from economy.config import parse_config
from economy.edge import GLOBAL_MODEL, EdgeError, EdgeNode, EventStore, write_global_model
from economy.edge.app import make_app
from economy.edge.node import DecisionInput
from economy.edge.store import StoredEvent
from economy.rundir import create_run_dir
from economy.serve import open_node

TEXTS = (
    "running shoes for trail and road",
    "a red dress for summer evenings",
    "organic coffee beans, dark roast",
    "noise cancelling headphones",
    "camping tent for four people",
    "kitchen knife set",
)


def tiny_run(root: Path, **federated: int) -> Path:
    cfg = parse_config(
        {
            "agents": {"model": "tiny-encoder", "lora_rank": 2},
            "federated": {"every": 0, **federated},
            "market": {"users": 4, "advertisers": 6},
            "output_dir": str(root),
        }
    )
    return create_run_dir(cfg)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def node_store(run, tmp_path_factory):
    node, store = open_node(run, tmp_path_factory.mktemp("edge") / "store")
    yield node, store
    store.close()


@pytest.fixture
def client(node_store):
    with TestClient(make_app(*node_store)) as c:
        yield c


def event(client, user, text, time=0.0, kind="view"):
    body = {"user": user, "kind": kind, "text": text, "time": time}
    response = client.post("/events", json=body)
    assert response.status_code == 200, response.text
    return response.json()["seq"]


@settings(max_examples=25, deadline=None)
@given(
    history=st.lists(
        st.tuples(st.sampled_from(("view", "click", "purchase")), st.sampled_from(TEXTS)),
        min_size=1,
        max_size=6,
    ),
    bids=st.lists(st.just(0.0) | st.floats(1e-6, 10.0), min_size=1, max_size=6),
    reserve=st.sampled_from((0.0, 0.5)),
)
def test_decision_is_the_agents_own(node_store, history, bids, reserve):
    """The node decides as agents.Agent.choose_ad does for the same context, model and seed."""
    node, _ = node_store
    fresh = EdgeNode(node.model, node.catalogue, rng=np.random.default_rng(3))
    for i, (kind, text) in enumerate(history):
        fresh.apply(StoredEvent(i, "u", kind, text, 3600.0 * i))
    ads = [Ad(f"a{i}", TEXTS[i % len(TEXTS)], b) for i, b in enumerate(bids)]
    agent = Agent(node.model.backbone, fresh.context("u"), state=node.model.state)
    want = agent.choose_ad(ads, reserve=reserve, rng=np.random.default_rng(3))
    assert fresh.decide("u", ads, reserve=reserve) == want


@settings(max_examples=25, deadline=None)
@given(
    asks=st.lists(
        st.tuples(
            st.sampled_from(("u0", "u1", "u2", "nobody")),
            st.lists(st.sampled_from((0.0, 0.3, 0.7, 1.1, 2.9, 5.0, 2.2e-309)), max_size=6),
            st.sampled_from((0.0, 1.0)),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_batched_decisions_equal_one_at_a_time(node_store, asks):
    """decide_many over A requests gives each request's own decision (distinct bids: no ties),
    and a request the node refuses (unknown user, a bid the auction cannot rank) leaves the
    others' decisions alone."""
    node, _ = node_store
    fresh = EdgeNode(node.model, node.catalogue, rng=np.random.default_rng(0))
    for u in range(3):
        fresh.apply(StoredEvent(u, f"u{u}", "view", TEXTS[u], 0.0))
    inputs = [
        DecisionInput(
            user,
            [f"a{i}" for i in range(len(bids))],
            [TEXTS[i % len(TEXTS)] for i in range(len(bids))],
            bids,
            [0.0] * len(bids),
            reserve,
        )
        for user, bids, reserve in asks
    ]
    batched = fresh.decide_many(inputs)
    for ask, got in zip(inputs, batched, strict=True):
        (alone,) = fresh.decide_many([ask])
        if isinstance(alone, Exception):
            assert type(got) is type(alone)
        else:
            assert got == alone


def test_second_price_by_hand(client):
    """Equal texts have equal CTR q, so bid x q ranks by bid and the winner pays the second
    bid: bids 3, 5, 2 -> b wins at 3; with reserve 4 it pays the reserve."""
    event(client, "hand", TEXTS[0])
    cands = [{"ad_id": k, "text": TEXTS[1], "bid": b} for k, b in (("a", 3), ("b", 5), ("c", 2))]
    r = client.post("/decide", json={"user": "hand", "candidates": cands, "slot": "top"})
    assert r.json() == {"ad_id": "b", "price": 3.0, "slot": "top"}
    r = client.post("/decide", json={"user": "hand", "candidates": cands, "reserve": 4.0})
    assert r.json() == {"ad_id": "b", "price": 4.0, "slot": "main"}
    r = client.post("/decide", json={"user": "hand", "candidates": cands, "reserve": 6.0})
    assert r.json() == {"ad_id": None, "price": 0.0, "slot": "main"}


def test_response_carries_only_the_decision(client, node_store):
    """Exactly ad_id, price, slot: no scores, no context, for candidates and for a query."""
    event(client, "private", "a red dress for summer evenings", kind="purchase")
    cands = [{"ad_id": f"x{i}", "text": t, "bid": 1.0 + i} for i, t in enumerate(TEXTS)]
    for body in ({"candidates": cands}, {"query": {"limit": 3}}, {"query": {"category": "?"}}):
        r = client.post("/decide", json={"user": "private", **body})
        assert r.status_code == 200
        assert set(r.json()) == {"ad_id", "price", "slot"}
        assert "dress" not in r.text
    node, _ = node_store
    assert r.json()["ad_id"] is None  # a category without ads: nothing to show
    ids = {a.ad_id for a in node.catalogue.query(None, 3)}
    q = client.post("/decide", json={"user": "private", "query": {"limit": 3}}).json()
    assert q["ad_id"] in ids


BAD = [
    (b"nope", 400, ""),
    (b"[1]", 400, ""),
    ({"user": "u"}, 422, ""),
    ({"user": "u", "query": {}, "candidates": [{"ad_id": "a", "text": "t", "bid": 1}]}, 422, ""),
    ({"user": "", "query": {}}, 422, "user"),
    ({"user": "u", "query": {"limit": 0}}, 422, "query.limit"),
    ({"user": "u", "query": {}, "extra": 1}, 422, "extra"),
    ({"user": "u", "candidates": []}, 422, "candidates"),
    (
        {"user": "u", "candidates": [{"ad_id": "a", "text": "t", "bid": "1"}]},
        422,
        "candidates.0.bid",
    ),
    (
        {"user": "u", "candidates": [{"ad_id": "a", "text": "t", "bid": -1}]},
        422,
        "candidates.0.bid",
    ),
    ({"user": "u", "candidates": [{"ad_id": "a", "text": "", "bid": 1}]}, 422, "candidates.0.text"),
    ({"user": "u", "candidates": [{"ad_id": "a", "bid": 1}]}, 422, "candidates.0.text"),
    ({"user": "u", "query": {}, "reserve": -0.5}, 422, "reserve"),
    ({"user": 7, "query": {}}, 422, "user"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD)
def test_bad_decisions_name_the_field(client, body, status, field):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = client.post("/decide", **kw)
    assert r.status_code == status, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert field in fields
    if field:
        assert r.json()["error"].startswith(field)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_bids_are_refused(client, number):
    body = b'{"user":"u","candidates":[{"ad_id":"a","text":"t","bid":' + number + b"}]}"
    r = client.post("/decide", content=body)
    assert r.status_code in (400, 422)
    if r.status_code == 422:
        assert r.json()["errors"][0]["field"] == "candidates.0.bid"


def test_bounds_on_candidates_and_duplicates(client):
    event(client, "many", TEXTS[0])
    one = {"text": "t", "bid": 1.0}
    r = client.post(
        "/decide",
        json={"user": "many", "candidates": [{"ad_id": str(i), **one} for i in range(1001)]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "candidates"
    r = client.post("/decide", json={"user": "many", "candidates": [{"ad_id": "a", **one}] * 2})
    assert r.status_code == 422 and "unique" in r.json()["error"]
    big = b'{"user":"' + b"x" * (1 << 20) + b'"}'
    assert client.post("/decide", content=big).status_code == 413


def test_bids_the_auction_cannot_rank_are_422(client):
    event(client, "tiny", TEXTS[0])
    cands = [{"ad_id": "a", "text": TEXTS[1], "bid": 2.2e-309}]
    r = client.post("/decide", json={"user": "tiny", "candidates": cands})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "candidates"


def test_unknown_user_is_404_and_events_create_users(client):
    r = client.post("/decide", json={"user": "newcomer", "query": {}})
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "user"
    users = client.get("/health").json()["users"]
    event(client, "newcomer", TEXTS[2])
    assert client.get("/health").json()["users"] == users + 1
    assert client.post("/decide", json={"user": "newcomer", "query": {}}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "u", "kind": "like", "text": "t", "time": 0.0}, "kind"),
        ({"user": "u", "kind": "view", "text": "", "time": 0.0}, "text"),
        ({"user": "u", "kind": "view", "text": "t"}, "time"),
        ({"user": "u", "kind": "view", "text": "t", "time": "0"}, "time"),
    ],
)
def test_bad_events_name_the_field_and_store_nothing(client, body, field):
    events = client.get("/health").json()["events"]
    r = client.post("/events", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field
    assert client.get("/health").json()["events"] == events


def metric(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[-1])


def test_metrics_count_requests_and_cache(client):
    event(client, "m", TEXTS[3])
    before = client.get("/metrics").text
    cands = [{"ad_id": "a", "text": TEXTS[4], "bid": 1.0}]
    for _ in range(3):
        client.post("/decide", json={"user": "m", "candidates": cands})
    text = client.get("/metrics").text
    assert metric(text, 'edge_requests_total{endpoint="decide",status="200"}') == 3
    assert metric(text, 'edge_request_seconds_count{endpoint="decide"}') == 3
    for name, grew in (("hits", 2), ("misses", 1)):  # the new event: 1 miss, then 2 hits
        key = f'edge_cache_{name}_total{{cache="context"}}'
        assert metric(text, key) - metric(before, key) == grew
    assert metric(text, 'edge_epsilon{scope="serving"}') == 0


def test_served_model_is_the_runs_global_state(tmp_path, run, node_store):
    """A run's global_model.npz is what the node scores with; a run with rounds but no file,
    or a file of other shapes, is refused."""
    node, _ = node_store
    trained = {k: np.array(v) for k, v in node.model.state.items()}
    name = next(k for k in trained if "lora_B" in k)
    trained[name] = trained[name] + 0.1
    other = tiny_run(tmp_path)
    write_global_model(other, trained)
    served, _ = open_node(other, tmp_path / "s1")
    try:
        assert served.model.version != node.model.version
        assert all(np.array_equal(served.model.state[k], trained[k]) for k in trained)
    finally:
        _.close()
    with pytest.raises(EdgeError, match=GLOBAL_MODEL):
        open_node(tiny_run(tmp_path, every=2), tmp_path / "s2")
    write_global_model(other, {**trained, name: np.zeros((1, 1))})
    with pytest.raises(EdgeError, match="shape"):
        open_node(other, tmp_path / "s3")


def test_no_store_without_run_dir():
    with pytest.raises(EdgeError, match="--store"):
        open_node(None, None)


ROW = st.fixed_dictionaries(
    {
        "user": st.text(min_size=1, max_size=8),
        "kind": st.sampled_from(("view", "click", "purchase")),
        "text": st.text(min_size=1, max_size=20),
        "time": st.floats(-1e9, 1e9),
        "category": st.text(max_size=5),
    }
)


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(ROW, min_size=1, max_size=4), max_size=5), torn=st.binary())
def test_store_keeps_every_appended_event_in_order(tmp_path_factory, batches, torn):
    """Reopened, the store gives back every appended event in order with seq 0, 1, ...; bytes
    of a torn last line (no newline) are dropped."""
    folder = tmp_path_factory.mktemp("store")
    with EventStore(folder) as store:
        for batch in batches:
            store.append(batch)
    with open(folder / "events.jsonl", "ab") as fh:
        fh.write(torn.replace(b"\n", b""))
    with EventStore(folder) as store:
        back = list(store.events())
        assert store.count == len(back)
    want = [row for batch in batches for row in batch]
    assert [e.seq for e in back] == list(range(len(want)))
    assert [(e.user, e.kind, e.text, e.time, e.category) for e in back] == [
        tuple(r[k] for k in ("user", "kind", "text", "time", "category")) for r in want
    ]


def test_store_is_private_locked_and_refuses_a_corrupt_line(tmp_path):
    folder = tmp_path / "edge"
    with EventStore(folder) as store:
        store.append([{"user": "u", "kind": "view", "text": "t", "time": 0.0, "category": ""}])
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(folder / "events.jsonl").st_mode) == 0o600
        with pytest.raises(EdgeError, match="in use"):
            EventStore(folder)
    with open(folder / "events.jsonl", "a") as fh:
        fh.write(json.dumps({"seq": 5, "user": "u"}) + "\n")
    with pytest.raises(EdgeError, match="line 2"):
        EventStore(folder)
