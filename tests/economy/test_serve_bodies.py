"""The node's request bodies (msgspec): values as the standard JSON parser reads them, every
wrong field named by its path, and decisions over catalogue ids equal to the same ads sent in
full (tiny model, seconds)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from economy.config import parse_config
from economy.edge.app import make_app
from economy.edge.schemas import BodyError, decode_decide, decode_event
from economy.rundir import create_run_dir
from economy.serve import open_node

ADVERTISERS = 12


@pytest.fixture(scope="module")
def node_store(tmp_path_factory):
    cfg = parse_config(
        {
            "agents": {"model": "tiny-encoder", "lora_rank": 2},
            "federated": {"every": 0},
            "market": {"users": 4, "advertisers": ADVERTISERS},
            "output_dir": str(tmp_path_factory.mktemp("runs")),
        }
    )
    node, store = open_node(create_run_dir(cfg), tmp_path_factory.mktemp("edge") / "s")
    yield node, store
    store.close()


@pytest.fixture(scope="module")
def client(node_store):
    with TestClient(make_app(*node_store)) as c:
        for u in range(3):
            body = {"user": f"u{u}", "kind": "click", "text": f"shoes number {u}", "time": 0.0}
            assert c.post("/events", json=body).status_code == 200
        yield c


@settings(max_examples=30, deadline=None)
@given(
    picks=st.permutations(range(ADVERTISERS)).flatmap(
        lambda p: st.integers(1, ADVERTISERS).map(lambda k: p[:k])
    ),
    user=st.sampled_from(("u0", "u1", "u2")),
    reserve=st.sampled_from((0.0, 0.5, 2.0)),
)
def test_ad_ids_decide_as_the_same_ads_in_full(client, node_store, picks, user, reserve):
    """Ads named by catalogue id get the decision the same ads get when sent in full (text,
    the catalogue's bid and category), in any order and number."""
    node, _ = node_store
    ads = [node.catalogue.ads[i] for i in picks]
    full = [{"ad_id": a.ad_id, "text": a.text, "bid": a.bid, "category": a.category} for a in ads]
    by_id = client.post(
        "/decide", json={"user": user, "ad_ids": [a.ad_id for a in ads], "reserve": reserve}
    )
    in_full = client.post("/decide", json={"user": user, "candidates": full, "reserve": reserve})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json() == in_full.json()


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"ad_ids": ["0", "nope", "also-nope"]}, "ad_ids.1", "not an ad"),
        ({"ad_ids": ["1", "1"]}, "", "unique"),
        ({"ad_ids": []}, "ad_ids", "length >= 1"),
        ({"ad_ids": ["x" * 129]}, "ad_ids.0", "length <= 128"),
        ({"ad_ids": [3]}, "ad_ids.0", "got `int`"),
        ({"ad_ids": ["0"], "query": {}}, "", "exactly one"),
    ],
)
def test_bad_ad_ids_are_named(client, extra, field, words):
    r = client.post("/decide", json={"user": "u0", **extra})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert words in r.json()["error"]


CANDIDATE = st.fixed_dictionaries(
    {
        "ad_id": st.text(min_size=1, max_size=10),
        "text": st.text(min_size=1, max_size=30),
        "bid": st.floats(0.0, 1e12),
    },
    optional={"category": st.text(max_size=5), "prior": st.floats(-1e300, 1e300)},
)
BODY = st.fixed_dictionaries(
    {
        "user": st.text(min_size=1, max_size=10),
        "candidates": st.lists(CANDIDATE, min_size=1, max_size=5, unique_by=lambda c: c["ad_id"]),
    },
    optional={"slot": st.text(min_size=1, max_size=5), "reserve": st.floats(0.0, 1e12)},
)


@settings(max_examples=100, deadline=None)
@given(body=BODY)
def test_valid_bodies_read_as_the_standard_parser_reads_them(body):
    """Every valid body decodes to the values ``json.loads`` reads from the same bytes
    (defaults for what it leaves out)."""
    raw = json.dumps(body).encode()
    got, want = decode_decide(raw), json.loads(raw)
    assert (got.user, got.slot, got.reserve) == (
        want["user"],
        want.get("slot", "main"),
        want.get("reserve", 0.0),
    )
    assert got.candidates is not None
    for c, w in zip(got.candidates, want["candidates"], strict=True):
        assert (c.ad_id, c.text, c.bid, c.category, c.prior) == (
            w["ad_id"],
            w["text"],
            w["bid"],
            w.get("category", ""),
            w.get("prior", 0.0),
        )


WRONG = {  # a value each field refuses
    "ad_id": st.sampled_from(["", 7, None, "x" * 129]),
    "text": st.sampled_from(["", 1.5, ["t"], "t" * 1001]),
    "bid": st.sampled_from([-1.0, "1", True, 1e13, None]),
    "category": st.sampled_from([3, "c" * 129]),
    "prior": st.sampled_from(["0", False, [0.0]]),
}


@settings(max_examples=100, deadline=None)
@given(body=BODY, data=st.data())
def test_one_wrong_candidate_field_is_named_by_its_path(body, data):
    """Whatever the body, one wrong value (or an unknown key, or a missing required key) at
    candidate i gives a 422 naming ``candidates.i.<key>``."""
    i = data.draw(st.integers(0, len(body["candidates"]) - 1))
    key = data.draw(st.sampled_from([*WRONG, "unknown", "missing"]))
    cand = dict(body["candidates"][i])
    if key == "unknown":
        key, cand["colour"] = "colour", "red"
    elif key == "missing":
        key = data.draw(st.sampled_from(["ad_id", "text", "bid"]))
        del cand[key]
    else:
        cand[key] = data.draw(WRONG[key])
    body["candidates"][i] = cand
    with pytest.raises(BodyError) as err:
        decode_decide(json.dumps(body).encode())
    assert (err.value.status, err.value.errors[0]["field"]) == (422, f"candidates.{i}.{key}")
    assert str(err.value).startswith(f"candidates.{i}.{key}: ")


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b'{"user":"u","kind":"view","text":"t","time":1e999}', 422, "time"),
        (b'{"user":"u","kind":"view","text":"t","time":NaN}', 400, ""),
        (b'{"user":"u","kind":"view","text":"t","time":0,"category":null}', 422, "category"),
        (b'{"user":"u","kind":"view","text":"t","time":0} trailing', 400, ""),
        (b'"an event"', 400, ""),
    ],
)
def test_bad_event_bodies(raw, status, field):
    with pytest.raises(BodyError) as err:
        decode_event(raw)
    assert (err.value.status, err.value.errors[0]["field"]) == (status, field)


def test_events_endpoint_stores_the_decoded_event(client, node_store):
    """An event posted is stored field for field as sent (defaults filled in)."""
    _, store = node_store
    before = store.count
    body = {"user": "u9", "kind": "purchase", "text": "tent, 4 people", "time": 12.5}
    assert client.post("/events", json=body).json() == {"seq": before}
    last = list(store.events())[-1]
    assert (last.user, last.kind, last.text, last.time, last.category) == (
        "u9",
        "purchase",
        "tent, 4 people",
        12.5,
        "",
    )
