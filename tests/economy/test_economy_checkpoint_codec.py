"""economy.state_codec: what it writes comes back equal, shared objects stay shared, the
devices' objects go to the private part, and nothing outside its class list is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from economy.ctr_estimator import CategoryCTR
from economy.state_codec import Encoded, StateCodecError, decode, encode

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**130), 2**130)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_side=3))
    | hnp.scalar_dtypes().flatmap(hnp.from_dtype)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.dictionaries(st.integers(-5, 5), inner, max_size=3)
    ),
    max_leaves=12,
)


def same(a, b):
    """Equal values of equal types (numpy: equal dtype, shape and bits)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def through_json(parts):
    """The parts as a checkpoint stores them: the trees through JSON text."""
    return {k: Encoded(json.loads(json.dumps(p.tree)), p.arrays) for k, p in parts.items()}


@given(values)
def test_values_come_back_equal(value):
    back = decode(through_json(encode({"v": value}, roots={})), roots={})
    assert same(back["v"], value)


@given(st.integers(0, 2**63 - 1), st.integers(0, 5))
def test_generators_continue_where_they_were(seed, draws):
    rng = np.random.default_rng(seed)
    rng.random(draws)
    back = decode(through_json(encode([rng, rng], roots={})), roots={})
    assert back[0] is back[1]  # one generator held twice stays one
    assert back[0].random(3).tolist() == rng.random(3).tolist()


def test_devices_objects_go_to_the_private_part():
    est = CategoryCTR(3, 2, prior_ctr=0.1)
    est.observe(np.array([0, 2]), np.array([1, 1]), np.array([True, False]))
    shared = np.arange(4.0)
    world = object()
    parts = encode({"est": est, "world": world, "a": shared, "b": shared}, roots={"w": world})
    assert parts["private"].arrays and not any(
        a.shape == est._clicks.shape for a in parts["server"].arrays.values()
    )
    back = decode(through_json(parts), roots={"w": world})
    assert back["world"] is world and back["a"] is back["b"]
    assert back["est"].predict(np.arange(3)).tolist() == est.predict(np.arange(3)).tolist()
    with pytest.raises(StateCodecError, match="private part"):
        decode(parts["server"], roots={"w": world})


@pytest.mark.parametrize("bad", [{1, 2}, object(), np.array([None], dtype=object), len])
def test_what_is_not_listed_is_not_written(bad):
    with pytest.raises(StateCodecError, match="cannot"):
        encode({"x": bad}, roots={})
