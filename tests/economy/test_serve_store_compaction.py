"""The edge node's event store compacts to each user's newest events: the contexts a node
replays are the same as from the whole log, sequence numbers stay, a crash leaves one log."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import PrivateContext
from economy.edge import EdgeError, EventStore
from economy.edge.store import COMPACTING, EVENTS

ROW = st.fixed_dictionaries(
    {
        "user": st.sampled_from(("u1", "u2", "u3")),
        "kind": st.sampled_from(("view", "click", "purchase")),
        "text": st.text(min_size=1, max_size=12),
        "time": st.floats(-1e6, 1e6),
        "category": st.text(max_size=3),
    }
)


def contexts(rows, keep: int) -> dict[str, list[tuple]]:
    """Each user's context events (kind, text, time, category) after replaying ``rows``."""
    ctx: dict[str, PrivateContext] = {}
    for r in rows:
        c = ctx.setdefault(r["user"], PrivateContext(max_events=keep))
        c.add(r["kind"], r["text"], r["time"], r["category"])
    return {u: [(e.kind, e.text, e.time, e.category) for e in c.events] for u, c in ctx.items()}


def as_rows(events) -> list[dict]:
    return [
        {"user": e.user, "kind": e.kind, "text": e.text, "time": e.time, "category": e.category}
        for e in events
    ]


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(ROW, min_size=1, max_size=5), max_size=12),
    keep=st.integers(1, 4),
    compact_min=st.integers(1, 8),
)
def test_compacted_log_replays_to_the_same_contexts(tmp_path_factory, batches, keep, compact_min):
    folder = tmp_path_factory.mktemp("store")
    acked = []
    with EventStore(folder, keep_per_user=keep, compact_min=compact_min) as store:
        for batch in batches:
            acked += store.append(batch)
            # the automatic rule: the log never reaches twice what the last compaction kept
            assert store.count <= max(compact_min, 2 * 3 * keep) + len(batch)
    rows = [r for b in batches for r in b]
    with EventStore(folder, keep_per_user=keep) as store:
        back = list(store.events())
        assert store.count == len(back)
        nxt = store.append(
            [{"user": "u9", "kind": "view", "text": "x", "time": 0.0, "category": ""}]
        )
    assert contexts(as_rows(back), keep) == contexts(rows, keep)
    assert [e.seq for e in acked] == list(range(len(rows)))  # acknowledged numbers are stable
    by_seq = {e.seq: e for e in acked}
    assert all(by_seq[e.seq] == e for e in back)  # kept events keep their numbers
    assert nxt[0].seq == len(rows)  # numbering goes on after the largest number given


def test_compact_by_hand_and_a_cut_short_compaction(tmp_path):
    folder = tmp_path / "edge"
    rows = [
        {"user": u, "kind": "view", "text": f"{u}-{i}", "time": float(i), "category": ""}
        for i in range(5)
        for u in ("a", "b")
    ]
    with EventStore(folder, keep_per_user=2, compact_min=1000) as store:
        store.append(rows)
        assert store.count == 10
        assert store.compact() == 6  # a and b keep events 3 and 4
        assert [(e.seq, e.text) for e in store.events()] == [
            (6, "a-3"),
            (7, "b-3"),
            (8, "a-4"),
            (9, "b-4"),
        ]
    (folder / COMPACTING).write_text('{"seq": 0, "user": "torn')  # a crash mid-rewrite
    with EventStore(folder) as store:
        assert store.count == 4
        assert not (folder / COMPACTING).exists()
        with pytest.raises(EdgeError, match="keep_per_user"):
            store.compact()
    assert (folder / EVENTS).read_text().count("\n") == 4


def test_bad_arguments_and_a_step_back_are_named(tmp_path):
    with pytest.raises(EdgeError, match="keep_per_user"):
        EventStore(tmp_path / "a", keep_per_user=0)
    with pytest.raises(EdgeError, match="compact_min"):
        EventStore(tmp_path / "b", compact_min=1.5)
    folder = tmp_path / "c"
    row = {"user": "u", "kind": "view", "text": "t", "time": 0.0, "category": ""}
    with EventStore(folder) as store:
        store.append([row, row])
    lines = (folder / EVENTS).read_text().splitlines()
    (folder / EVENTS).write_text("\n".join([lines[1], lines[0]]) + "\n")
    with pytest.raises(EdgeError, match="line 2 has seq 0 after 1"):
        EventStore(folder)
