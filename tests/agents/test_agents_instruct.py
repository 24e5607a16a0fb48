"""agents.instruct: instruction examples, response-only loss, causal-LM DP-SGD, PEFT folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from agents import AgentError, enable_lora, load_model
from agents.instruct import (
    IGNORE,
    enable_checkpointing,
    encode,
    example_loss,
    instruction,
    mean_response_loss,
    movie_title,
    response_losses,
    save_peft,
    train_causal,
)
from agents.lora import activate, adapter_state, state_version


@pytest.fixture(scope="module")
def bb():
    backbone = load_model("tiny-causal", max_length=64)
    enable_lora(backbone, rank=2, seed=0)
    return backbone


def test_movie_title_and_prompt_format():
    assert movie_title("Heat (1995). Genres: Action, Crime") == "Heat (1995)"
    assert instruction(["A (1990)", "B (1991)"]) == (
        "### Instruction: Given that the user viewed A (1990); B (1991), name a movie they "
        "will like.\n### Response:"
    )
    with pytest.raises(AgentError, match="history"):
        instruction([])


def test_bad_encode_arguments_are_named(bb):
    with pytest.raises(AgentError, match="max_length"):
        encode(bb.tokenizer, ["p"], [" r"], max_length=4)
    with pytest.raises(AgentError, match="equal"):
        encode(bb.tokenizer, ["p", "q"], [" r"])
    with pytest.raises(AgentError, match="not a str"):
        encode(bb.tokenizer, "p", [" r"])


@hsettings(max_examples=25, deadline=None)
@given(
    prompt=st.text("abcdefgh ;(19)", min_size=1, max_size=120),
    response=st.text("abcdefgh ()", min_size=1, max_size=60),
    max_length=st.integers(8, 64),
)
def test_encoding_keeps_the_response_labels_only_and_fits(bb, prompt, response, max_length):
    """Invariant: <= max_length tokens, right padding, labels = ids exactly on the response
    (which ends with EOS), IGNORE elsewhere."""
    batch = encode(bb.tokenizer, [prompt, "x"], [" " + response, " y"], max_length=max_length)
    assert batch.input_ids.shape[1] <= max_length
    for i in range(2):
        length = int(batch.attention_mask[i].sum())
        assert batch.attention_mask[i, :length].all() and not batch.attention_mask[i, length:].any()
        scored = batch.labels[i] != IGNORE
        assert scored.any() and not scored[length:].any()
        assert torch.equal(batch.labels[i][scored], batch.input_ids[i][scored])
        last = int(torch.nonzero(scored).max())
        assert last == length - 1 and int(batch.input_ids[i, last]) == bb.tokenizer.eos_token_id
        # the response is one contiguous tail of the example
        first = int(torch.nonzero(scored).min())
        assert scored[first:length].all()


def test_loss_counts_response_tokens_only_by_hand(bb):
    """A 2-example batch: the loss equals torch's cross entropy on the response positions
    (by hand), equals Hugging Face's own labels= loss, and differs from the unmasked loss."""
    batch = encode(bb.tokenizer, ["the user viewed a tent", "coffee"], [" socks", " a red dress"])
    with torch.no_grad():
        logits = bb.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    per_example = response_losses(logits, batch.labels)
    by_hand = []
    for i in range(2):
        pos = [t for t in range(batch.labels.shape[1] - 1) if batch.labels[i, t + 1] != IGNORE]
        targets = batch.labels[i, [t + 1 for t in pos]]
        by_hand.append(torch.nn.functional.cross_entropy(logits[i, pos], targets))
    assert torch.allclose(per_example, torch.stack(by_hand), atol=1e-6)
    state = adapter_state(bb)
    whole = mean_response_loss(bb, state, batch)
    with torch.no_grad():
        hf = bb.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
        ).loss
    assert whole == pytest.approx(float(hf), abs=1e-5)
    unmasked = torch.where(batch.attention_mask.bool(), batch.input_ids, IGNORE)
    assert abs(float(response_losses(logits, unmasked).mean()) - float(per_example.mean())) > 1e-3


def test_training_loss_of_one_example_equals_the_full_logits_loss(bb):
    """The training path (LM head only at response positions) against response_losses on the
    model's full logits, example by example."""
    batch = encode(bb.tokenizer, ["the user viewed a tent", "coffee"], [" socks", " a red dress"])
    with torch.no_grad():
        logits = bb.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        full = response_losses(logits, batch.labels)
        fast = torch.stack([example_loss(bb, *batch.example(i)) for i in range(2)])
    assert torch.allclose(fast, full, atol=1e-5)


def test_dp_sgd_lowers_the_response_loss_and_is_seeded(bb):
    enable_checkpointing(bb)
    batch = encode(bb.tokenizer, ["a tent", "coffee", "shoes", "a novel"], [" socks"] * 4)
    start = adapter_state(bb)
    before = mean_response_loss(bb, start, batch)
    kwargs = dict(epochs=6, batch_size=4, lr=3e-2, max_grad_norm=10.0, rng=1)
    fit = train_causal(bb, start, batch, **kwargs)
    assert fit.plan.steps == 6 and fit.plan.epsilon == float("inf")
    assert mean_response_loss(bb, fit.state, batch) < before - 0.1
    again = train_causal(bb, start, batch, **kwargs)
    assert all(np.array_equal(fit.state[k], again.state[k]) for k in start)
    noisy = train_causal(bb, start, batch, **{**kwargs, "noise_multiplier": 1.0})
    assert 0 < noisy.plan.epsilon < float("inf")


def test_clipping_bounds_each_step_without_noise(bb):
    """With clipping C and no noise the private gradient's norm is <= C (B examples, each
    clipped to C, summed, divided by the expected batch B)."""
    batch = encode(bb.tokenizer, ["a tent", "coffee"], [" socks", " shoes"])
    start = adapter_state(bb)
    from agents.dp_sgd import private_gradient
    from agents.instruct import _example_gradients, _training

    with _training(bb) as params:
        activate(bb, start, state_version(start))
        grads, _ = _example_gradients(bb, params, batch, np.arange(2))
        g = private_gradient(
            grads,
            {k: p.detach() for k, p in params.items()},
            max_grad_norm=1e-3,
            noise_multiplier=0.0,
            expected_batch_size=2,
            generator=torch.Generator().manual_seed(0),
        )
    norm = float(torch.sqrt(sum((v**2).sum() for v in g.values())))
    assert 0 < norm <= 1e-3 + 1e-9


def test_peft_folder_loads_with_peft_and_gives_the_same_logits(bb, tmp_path):
    from peft import PeftModel

    from agents.tiny import tiny_model

    batch = encode(bb.tokenizer, ["a tent", "coffee"], [" socks", " shoes"])
    state = {k: v + 0.05 for k, v in adapter_state(bb).items()}  # B != 0: the adapter matters
    folder = save_peft(bb, state, tmp_path / "adapter-round-1")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }
    base, _ = tiny_model("causal")
    loaded = PeftModel.from_pretrained(base, folder).eval()
    activate(bb, state, state_version(state))
    with torch.no_grad():
        ours = bb.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        theirs = loaded(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    with loaded.disable_adapter(), torch.no_grad():
        without = loaded(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert not torch.allclose(ours, without, atol=1e-4)  # the arrays really were loaded
