"""LoRA: targets per architecture, fp32 state round trips, adapter swapping between agents."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import (
    Ad,
    Agent,
    AgentError,
    enable_lora,
    load_model,
    load_state,
    save_state,
    state_nbytes,
    state_version,
    target_modules,
)

ADS = ["a red dress for summer", "dark roast coffee", "camping tent", "running shoes"]


@pytest.fixture(scope="module")
def backbone():
    return load_model("tiny-encoder")


def _trained(agent: Agent, seed: int) -> Agent:
    noise = np.random.default_rng(seed)
    agent.load_state(
        {k: v + 0.1 * noise.standard_normal(v.shape) for k, v in agent.state().items()}
    )
    return agent


@pytest.mark.parametrize(
    ("name", "targets"),
    [("tiny-encoder", {"query", "value"}), ("tiny-causal", {"q_proj", "v_proj"})],
)
def test_targets_per_architecture(name, targets):
    bb = load_model(name)
    assert set(target_modules(bb.model)) == targets
    state = enable_lora(bb, rank=4)
    assert all(v.dtype == np.float32 for v in state.values())
    assert state_nbytes(state) == sum(v.size * 4 for v in state.values())
    with pytest.raises(AgentError, match="already enabled"):
        enable_lora(bb, rank=2)


def test_fresh_adapter_leaves_the_model_unchanged():
    bb = load_model("tiny-encoder")
    before = bb.embed(ADS)
    bb.clear_cache()
    enable_lora(bb, rank=4)
    np.testing.assert_allclose(bb.embed(ADS), before, atol=1e-6)


def test_round_trip_gives_identical_scores(backbone, tmp_path):
    a = _trained(Agent(backbone), 1)
    a.context.add("view", "red dress", time=0.0)
    path = save_state(tmp_path / "a.npz", a.state())
    b = Agent(backbone, a.context, state=load_state(path))
    assert b.version == a.version
    np.testing.assert_array_equal(a.predict_ctr(ADS), b.predict_ctr(ADS))
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_swapping_adapters_keeps_each_agents_scores(backbone):
    a, b = _trained(Agent(backbone), 2), _trained(Agent(backbone), 3)
    for agent in (a, b):
        agent.context.add("purchase", "trail running shoes", time=0.0)
    sa, sb = a.predict_ctr(ADS), b.predict_ctr(ADS)
    assert not np.allclose(sa, sb)
    backbone.clear_cache()  # recompute through the swapped-in adapters
    np.testing.assert_allclose(a.predict_ctr(ADS), sa, atol=1e-6)
    np.testing.assert_allclose(b.predict_ctr(ADS), sb, atol=1e-6)
    assert a.choose_ad([Ad("x", ADS[0], 1.0)]).winner == "x"


def test_state_version_is_a_content_hash(backbone):
    s = Agent(backbone).state()
    assert state_version(s) == state_version({k: v.copy() for k, v in s.items()})
    k = next(iter(s))
    s[k] = s[k] + 1e-3
    assert state_version(s) != state_version(Agent(backbone).state())


def test_wrong_state_is_refused(backbone):
    agent = Agent(backbone)
    s = agent.state()
    k = next(iter(s))
    with pytest.raises(AgentError, match="shape"):
        agent.load_state({**s, k: s[k][:1]})
    with pytest.raises(AgentError, match="missing"):
        agent.load_state({kk: v for kk, v in s.items() if kk != k})


def _adapted(state: dict) -> set[str]:
    """The module names (last component) an adapter state covers."""
    return {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in state}


def test_chosen_target_modules_are_the_ones_adapted():
    bb = load_model("tiny-causal")
    state = enable_lora(bb, rank=2, target_modules=["q_proj", "k_proj", "o_proj"])
    assert _adapted(state) == {"q_proj", "k_proj", "o_proj"}
    # tiny-causal has 2 layers; each adapted projection holds lora_A and lora_B
    assert len(state) == 2 * 3 * 2
    assert _adapted(enable_lora(bb, rank=2, target_modules=("o_proj", "q_proj", "k_proj"))) == {
        "q_proj",
        "k_proj",
        "o_proj",
    }
    with pytest.raises(AgentError, match=r"already enabled .*'k_proj', 'o_proj', 'q_proj'"):
        enable_lora(bb, rank=2, target_modules=["q_proj"])
    one = load_model("tiny-causal")
    assert _adapted(enable_lora(one, rank=2, target_modules="up_proj")) == {"up_proj"}


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["q_proj", "qkv"], r"\['qkv'\] match no layer .*'k_proj'.*'q_proj'.*'v_proj'"),
        (["lm_head"], r"\['lm_head'\] match no layer"),  # outside the body the state covers
        ([], "non-empty list"),
        (["q_proj", ""], "non-empty list"),
    ],
)
def test_unknown_target_modules_name_the_layers_there_are(targets, message):
    bb = load_model("tiny-causal")
    with pytest.raises(AgentError, match=message):
        enable_lora(bb, rank=2, target_modules=targets)
    assert bb.lora is None  # nothing was wrapped


LLAMA_LAYERS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@settings(max_examples=10, deadline=None)
@given(st.sets(st.sampled_from(LLAMA_LAYERS), min_size=1))
def test_the_adapter_covers_exactly_the_chosen_layers(chosen):
    bb = load_model("tiny-causal")
    state = enable_lora(bb, rank=2, target_modules=sorted(chosen))
    assert _adapted(state) == chosen
    assert len(state) == 2 * 2 * len(chosen)  # 2 layers x (lora_A, lora_B) per chosen name
