"""agents.generate: seeded generation and log-likelihood choice on a causal LM."""

from __future__ import annotations

import pytest
import torch

from agents import AgentError, load_model
from agents.generate import choose, generate


@pytest.fixture(scope="module")
def causal():
    return load_model("tiny-causal")


def test_generation_repeats_and_leaves_global_rng_alone(causal):
    torch.manual_seed(123)
    expected = torch.rand(1).item()
    torch.manual_seed(123)
    a = generate(causal, "a red dress", max_new_tokens=5, temperature=1.0, seed=7)
    assert torch.rand(1).item() == expected  # the global RNG did not move
    assert a == generate(causal, "a red dress", max_new_tokens=5, temperature=1.0, seed=7)
    assert isinstance(generate(causal, "a red dress", max_new_tokens=3), str)


def test_choose_picks_the_loglik_argmax(causal):
    options = ["shoes", "coffee beans", "a lamp"]
    scores = causal.loglik("I like", [" " + o for o in options])
    assert choose(causal, "I like", options) == int(scores.argmax())


def test_bad_input_is_named(causal):
    enc = load_model("tiny-encoder")
    with pytest.raises(AgentError, match="causal"):
        generate(enc, "x")
    with pytest.raises(AgentError, match="max_new_tokens"):
        generate(causal, "x", max_new_tokens=0)
    with pytest.raises(AgentError, match="temperature"):
        generate(causal, "x", temperature=float("nan"))
    with pytest.raises(AgentError, match="option"):
        choose(causal, "x", [])
