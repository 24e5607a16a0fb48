"""RowStore: an LRU of float32 rows in blocks, checked against a plain OrderedDict LRU."""

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentError
from agents.row_store import RowStore

KEYS = st.sampled_from("abcdefgh")
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(KEYS, max_size=5, unique=True)),
        st.tuples(st.just("get"), st.lists(KEYS, max_size=6)),
        st.tuples(st.just("resize"), st.integers(1, 6)),
    ),
    max_size=30,
)


class ReferenceLRU:
    """The obvious implementation: one array per key in an OrderedDict."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.rows = capacity, OrderedDict()

    def get(self, keys):
        out = []
        for key in keys:
            if key in self.rows:
                self.rows.move_to_end(key)
                out.append(self.rows[key])
            else:
                out.append(None)
        return out

    def put(self, keys, rows):
        for key, row in zip(keys, rows, strict=True):
            self.rows[key] = row
            while len(self.rows) > self.capacity:
                self.rows.popitem(last=False)

    def resize(self, capacity):
        self.capacity = capacity
        while len(self.rows) > capacity:
            self.rows.popitem(last=False)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), OPS)
def test_rows_match_a_plain_lru(capacity, block_rows, ops):
    store, ref = RowStore(3, capacity, block_rows=block_rows), ReferenceLRU(capacity)
    counter = 0
    for op, arg in ops:
        if op == "put":
            new = [k for k in arg if k not in ref.rows]  # put takes keys not yet stored
            rows = np.arange(counter, counter + 3 * len(new), dtype=np.float32).reshape(-1, 3)
            counter += rows.size
            store.put(new, rows)
            ref.put(new, rows)
        elif op == "get":
            found, rows = store.get(arg)
            expected = ref.get(arg)
            assert [f >= 0 for f in found] == [e is not None for e in expected]
            for f, e in zip(found, expected, strict=True):
                if e is not None:
                    np.testing.assert_array_equal(rows[f], e)
        else:
            store.capacity = arg
            ref.resize(arg)
        assert len(store) == len(ref.rows) <= store.capacity
        assert store.nbytes <= max(store.capacity, block_rows) * 3 * 4 + block_rows * 3 * 4


def test_blocks_are_allocated_as_rows_arrive_and_freed_by_clear():
    store = RowStore(4, 10, block_rows=4)
    assert store.nbytes == 0
    store.put(list("abcde"), np.ones((5, 4), np.float32))
    assert store.nbytes == 2 * 4 * 4 * 4  # two blocks of 4 rows of 4 float32
    store.clear()
    assert len(store) == 0 and store.nbytes == 0


def test_bad_shapes_and_capacities_are_named():
    with pytest.raises(AgentError, match="capacity"):
        RowStore(2, 0)
    store = RowStore(2, 3)
    with pytest.raises(AgentError, match=r"rows must be \(1, 2\)"):
        store.put(["a"], np.zeros((1, 3)))
    with pytest.raises(AgentError, match="capacity must be >= 1"):
        store.capacity = 0
