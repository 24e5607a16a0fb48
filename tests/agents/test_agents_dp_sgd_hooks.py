"""Per-example gradients from Linear-layer hooks: equal to vmap's, example by example."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentError, load_model, train
from agents import training as training_module
from agents.dp_sgd import (
    linear_owners,
    linear_per_example_gradients,
    linear_tape,
    per_example_gradients,
)
from agents.lora import adapter_parameters, enable_lora
from agents.scoring import HEAD_KEYS, initial_head, torch_logits
from agents.training import click_gradients


def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3, bias=False)
    )


def _vmap_grads(net: torch.nn.Module, names, x: torch.Tensor, y: torch.Tensor):
    """The peer: vmap of grad over one example at a time through functional_call."""
    params = {k: v.detach() for k, v in net.named_parameters() if k in names}

    def loss(p, xi, yi):
        return ((torch.func.functional_call(net, p, (xi[None],)) - yi) ** 2).sum()

    return per_example_gradients(loss, params, x, y)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 4))
def test_hook_gradients_equal_vmap_ones(seed, batch, tokens):
    """(B, T, in) inputs: each example's weight gradient is the sum over its T positions."""
    net = _mlp(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, tokens, 4, generator=g), torch.randn(batch, tokens, 3, generator=g)
    names = ["0.weight", "0.bias", "2.weight"]
    grads, losses = linear_per_example_gradients(
        net, names, lambda: ((net(x) - y) ** 2).sum((1, 2))
    )
    want, want_losses = _vmap_grads(net, names, x, y)
    for k in names:
        assert grads[k].shape == (batch, *dict(net.named_parameters())[k].shape)
        torch.testing.assert_close(grads[k], want[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses, want_losses)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.data())
def test_an_example_gradient_ignores_the_rest_of_the_batch(seed, batch, data):
    """Per-example independence: example i's gradient from the batch == from i alone, and a
    permuted batch permutes the gradients."""
    net = _mlp(seed)
    x = torch.randn(batch, 2, 4, generator=torch.Generator().manual_seed(seed))
    names = ["0.weight", "0.bias", "2.weight"]

    def grads_of(xb):
        return linear_per_example_gradients(net, names, lambda: net(xb).square().sum((1, 2)))[0]

    grads = grads_of(x)
    i = data.draw(st.integers(0, batch - 1))
    alone = grads_of(x[i : i + 1])
    perm = torch.as_tensor(data.draw(st.permutations(range(batch))))
    permuted = grads_of(x[perm])
    for k in names:
        torch.testing.assert_close(grads[k][i], alone[k][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(permuted[k], grads[k][perm], rtol=1e-5, atol=1e-6)


def test_hand_computed_gradient_of_one_linear_layer():
    """loss_i = sum(W x_i + b): dW_i = 1 x_i^T (rows of x_i), db_i = 1 per output."""
    layer = torch.nn.Linear(2, 2)
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    grads, _ = linear_per_example_gradients(layer, ["weight", "bias"], lambda: layer(x).sum(1))
    want = torch.tensor([[[1.0, 2.0], [1.0, 2.0]], [[3.0, -1.0], [3.0, -1.0]]])
    torch.testing.assert_close(grads["weight"], want)
    torch.testing.assert_close(grads["bias"], torch.ones(2, 2))


def test_a_layer_called_twice_adds_both_calls():
    layer = torch.nn.Linear(3, 3)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    grads, _ = linear_per_example_gradients(
        layer, ["weight"], lambda: layer(torch.tanh(layer(x))).square().sum(1)
    )

    def loss(p, xi):
        twice = torch.func.functional_call(
            layer, p, (torch.tanh(torch.func.functional_call(layer, p, (xi,))),)
        )
        return twice.square().sum()

    want, _ = per_example_gradients(loss, {"weight": layer.weight.detach()}, x)
    torch.testing.assert_close(grads["weight"], want["weight"])


def test_a_tracked_layer_the_forward_skips_gets_zeros():
    net = _mlp(0)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    grads, _ = linear_per_example_gradients(net, ["0.bias", "2.weight"], lambda: net[0](x).sum(1))
    torch.testing.assert_close(grads["0.bias"], torch.ones(3, 5))
    torch.testing.assert_close(grads["2.weight"], torch.zeros(3, 3, 5))


def test_hooks_are_removed_and_bad_names_named():
    net = _mlp(0)
    with pytest.raises(AgentError, match=r"'1\.weight' is not one"), linear_tape(net, ["1.weight"]):
        pass
    with pytest.raises(AgentError, match="recorded no call"):
        with linear_tape(net, ["0.weight"]) as tape:
            pass
        tape.gradients(torch.zeros(()))
    try:
        with linear_tape(net, ["0.weight"]):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not net[0]._forward_hooks  # removed on the error path too
    assert linear_owners(net, ["0.weight", "x.weight"]) == {}


# ---- the agent's click loss on the tiny models ---------------------------------------------

_TEXTS = ["red shoes for running", "coffee", "a long summer dress with flowers and pockets", "tent"]


def _click_setup(name: str):
    backbone = load_model(name)
    enable_lora(backbone, rank=2)
    params = {k: v.detach().clone() for k, v in adapter_parameters(backbone).items()}
    gen = torch.Generator().manual_seed(0)
    for v in params.values():  # peft's B starts at zero: move it so every path carries gradient
        v.add_(0.1 * torch.randn(v.shape, generator=gen))
    params.update({k: torch.from_numpy(v) for k, v in initial_head(backbone.dim).items()})
    enc = backbone.tokenize(_TEXTS)
    n = len(_TEXTS)
    ctx = torch.randn(n, backbone.dim, generator=gen)
    batch = (
        enc["input_ids"],
        enc["attention_mask"],
        ctx,
        torch.linspace(-1, 1, n),
        torch.tensor([1.0, 0.0, 1.0, 0.0]),
    )
    return backbone, params, batch


def _vmap_click_grads(backbone, params, batch):
    """The peer: the pre-hook code of train, vmap over one example at a time."""

    def loss_one(p, ids, mask, ctx, prior, y):
        adapter_p = {k: v for k, v in p.items() if k not in HEAD_KEYS}
        emb = backbone.pooled(ids[None], mask[None], adapter_p)[0]
        logit = torch_logits(ctx, emb, p, prior)
        return torch.nn.functional.binary_cross_entropy_with_logits(logit, y)

    return per_example_gradients(loss_one, {k: v.detach() for k, v in params.items()}, *batch)


@pytest.mark.parametrize("name", ["tiny-encoder", "tiny-causal"])
def test_click_gradients_equal_vmap_on_tiny_models(name):
    backbone, params, batch = _click_setup(name)
    assert batch[1].sum(1).unique().numel() > 1  # padded: the texts have different lengths
    adapter = [k for k in params if k not in HEAD_KEYS]
    assert set(linear_owners(backbone.core, adapter)) == set(adapter)  # the hook path runs
    grads, losses = click_gradients(backbone, params, batch)
    want, want_losses = _vmap_click_grads(backbone, params, batch)
    assert set(grads) == set(want)
    for k in want:
        torch.testing.assert_close(grads[k], want[k], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses, want_losses, rtol=1e-5, atol=1e-6)
    assert all(float(grads[k].abs().max()) > 0 for k in adapter)


@pytest.mark.parametrize("name", ["tiny-encoder", "tiny-causal"])
def test_padding_and_other_examples_do_not_change_an_example_gradient(name):
    """Example 1 ('coffee', the shortest) in the padded batch == alone without padding."""
    backbone, params, batch = _click_setup(name)
    grads, _ = click_gradients(backbone, params, batch)
    length = int(batch[1][1].sum())
    alone = tuple(t[1:2] for t in batch)
    alone = (alone[0][:, :length], alone[1][:, :length], *alone[2:])
    one, _ = click_gradients(backbone, params, alone)
    for k in grads:
        torch.testing.assert_close(grads[k][1], one[k][0], rtol=1e-5, atol=1e-6)


def test_frozen_head_is_a_constant():
    backbone, params, batch = _click_setup("tiny-encoder")
    head = {k: params.pop(k) for k in HEAD_KEYS}
    grads, _ = click_gradients(backbone, params, batch, head=head)
    assert set(grads) == set(params)
    with pytest.raises(AgentError, match="head keys"):
        click_gradients(backbone, params, batch)


@pytest.mark.parametrize("name", ["tiny-encoder", "tiny-causal"])
def test_train_matches_the_vmap_path(name, monkeypatch):
    backbone = load_model(name)
    state = {**enable_lora(backbone, rank=2), **initial_head(backbone.dim)}
    rng = np.random.default_rng(0)
    ctx = rng.standard_normal((6, backbone.dim)).astype(np.float32)
    texts = [*_TEXTS, "hiking boots", "espresso machine"]
    kwargs = dict(epochs=2, batch_size=3, noise_multiplier=1.0, lr=0.05, rng=7)
    hooks = train(backbone, state, ctx, texts, [1, 0, 1, 0, 1, 0], **kwargs)
    monkeypatch.setattr(training_module, "linear_owners", lambda *a: {})  # force vmap
    vmap = train(backbone, state, ctx, texts, [1, 0, 1, 0, 1, 0], **kwargs)
    np.testing.assert_allclose(hooks.losses, vmap.losses, rtol=1e-5)
    for k in vmap.state:
        np.testing.assert_allclose(hooks.state[k], vmap.state[k], rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(hooks.state[k], state[k]) for k in state)


# ---- the causal LM's instruction loss (agents.instruct) -----------------------------------


@pytest.mark.parametrize("checkpointing", [False, True])
def test_causal_batched_gradients_equal_one_backward_per_example(checkpointing):
    from agents import instruct

    bb = load_model("tiny-causal")
    enable_lora(bb, rank=2)
    if checkpointing:
        instruct.enable_checkpointing(bb)
    prompts = ["the user viewed a tent", "coffee", "a very long history of many movies"]
    batch = instruct.encode(bb.tokenizer, prompts, [" socks", " a red dress", " x"])
    idx = np.array([2, 0, 1])
    with instruct._training(bb) as params:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():  # move peft's zero B so every path carries gradient
            for p in params.values():
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        grads, losses = instruct._example_gradients(bb, params, batch, idx)
        want, want_losses = instruct._loop_example_gradients(bb, params, batch, idx)
        assert all(p.grad is None for p in params.values())  # nothing accumulated
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for k in want:
        torch.testing.assert_close(grads[k], want[k], rtol=1e-5, atol=1e-6)


def test_train_causal_matches_the_loop_path(monkeypatch):
    from agents import instruct

    bb = load_model("tiny-causal")
    start = enable_lora(bb, rank=2)
    batch = instruct.encode(bb.tokenizer, ["a tent", "coffee", "shoes", "a novel"], [" socks"] * 4)
    kwargs = dict(epochs=3, batch_size=2, lr=3e-2, noise_multiplier=1.0, rng=1)
    fit = instruct.train_causal(bb, start, batch, **kwargs)
    monkeypatch.setattr(instruct, "linear_owners", lambda *a: {})  # force the loop
    loop = instruct.train_causal(bb, start, batch, **kwargs)
    np.testing.assert_allclose(fit.losses, loop.losses, rtol=1e-5)
    for k in start:
        np.testing.assert_allclose(fit.state[k], loop.state[k], rtol=1e-4, atol=1e-6)


def test_train_cuts_padding_columns_without_changing_gradients(monkeypatch):
    """Each step's batch is cut to its longest text: only padding columns go, and re-padded to
    the log's width the same per-example gradients come out."""
    backbone = load_model("tiny-encoder")
    state = {**enable_lora(backbone, rank=2), **initial_head(backbone.dim)}
    texts = ["a", "b c", "a much longer text " * 4, "d", "e f", "g"]
    enc = backbone.tokenize(texts)
    full = enc["input_ids"].shape[1]
    real = training_module.click_gradients
    cuts = []

    def spy(bb, params, batch, **kw):
        ids, mask, *rest = batch
        width = ids.shape[1]
        for row in ids:  # the full row it came from has nothing but padding past the cut
            (r,) = [r for r in range(len(texts)) if torch.equal(enc["input_ids"][r, :width], row)]
            assert not enc["attention_mask"][r, width:].any()
        cuts.append(width < full)
        pad = full - width
        padded = (
            torch.nn.functional.pad(ids, (0, pad), value=backbone.tokenizer.pad_token_id),
            torch.nn.functional.pad(mask, (0, pad)),
            *rest,
        )
        got, want = real(bb, params, batch, **kw), real(bb, params, padded, **kw)
        for k in want[0]:
            torch.testing.assert_close(got[0][k], want[0][k], rtol=1e-4, atol=1e-6)
        return got

    monkeypatch.setattr(training_module, "click_gradients", spy)
    ctx = np.random.default_rng(0).standard_normal((6, backbone.dim)).astype(np.float32)
    train(backbone, state, ctx, texts, [1, 0, 1, 0, 1, 0], epochs=3, batch_size=2, rng=3)
    assert any(cuts)  # some step did cut
