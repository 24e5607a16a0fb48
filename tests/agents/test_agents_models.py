"""Backends: tiny encoder and causal LM (fast), MiniLM and SmolLM2 (slow); offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentError, ModelNotFoundError, builtin_names, load_model


@pytest.mark.parametrize("name", ["tiny-encoder", "tiny-causal"])
def test_tiny_backends_embed_unit_vectors_deterministically(name):
    bb = load_model(name)
    e = bb.embed(["red dress", "coffee beans", "red dress"])
    assert e.shape == (3, bb.dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(e[0], e[2])
    np.testing.assert_array_equal(load_model(name).embed(["red dress"])[0], e[0])  # seeded


def test_padding_does_not_change_embeddings():
    bb = load_model("tiny-encoder")
    alone = bb.embed(["tent"])
    bb.clear_cache()
    padded = bb.embed(["tent", "noise cancelling headphones with long battery life"])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_loglik_reuses_context_cache_and_matches_full_sequences():
    bb = load_model("tiny-causal")
    context, conts = "the user viewed sneakers", ["running shoes", "a novel about space", "tent"]
    fast = bb.loglik(context, conts)
    tok = bb.tokenizer
    for score, cont in zip(fast, conts, strict=True):
        ctx_ids = tok(context, return_tensors="pt")["input_ids"]
        cont_ids = tok(cont, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([ctx_ids, cont_ids], 1)
        with torch.no_grad():
            logp = torch.log_softmax(bb.model(input_ids=ids).logits[0, :-1], -1)
        k = ctx_ids.shape[1]
        target = ids[0, k:]
        naive = logp[k - 1 :].gather(-1, target[:, None]).mean()
        assert score == pytest.approx(float(naive), abs=1e-4)
    assert bb.loglik(context, []).shape == (0,)
    with pytest.raises(AgentError, match="causal"):
        load_model("tiny-encoder").loglik("x", ["y"])


def test_unknown_name_fails_at_once_without_download():
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="no download"):
        load_model("someone/not-a-real-model-xyz")
    with pytest.raises(ModelNotFoundError):
        load_model("/no/such/folder")
    assert time.perf_counter() - start < 30  # a hanging hub request would block far longer
    assert "minilm" in builtin_names()


def test_bad_text_arguments():
    bb = load_model("tiny-encoder")
    with pytest.raises(AgentError, match="sequence"):
        bb.embed("red dress")


def test_local_folder_round_trip(tmp_path):
    bb = load_model("tiny-causal")
    bb.model.save_pretrained(tmp_path)
    bb.tokenizer.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    assert again.kind == "causal"
    np.testing.assert_allclose(again.embed(["tent"]), bb.embed(["tent"]), atol=1e-5)


@pytest.mark.slow
def test_minilm_default_is_semantic():
    bb = load_model()
    assert (bb.kind, bb.dim) == ("encoder", 384)
    e = bb.embed(["a red summer dress", "a crimson dress for summer", "dark roast coffee beans"])
    assert e[0] @ e[1] > 0.7 > e[0] @ e[2]


@pytest.mark.slow
def test_smollm2_from_the_gguf_package(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDADAGENT_CACHE", str(tmp_path))  # also exercises the one-time dequant
    bb = load_model("smollm2")
    assert bb.kind == "causal" and (tmp_path / "models" / "smollm2-135m-instruct").is_dir()
    ll = bb.loglik("The capital of France is", [" Paris.", " a purple banana."])
    assert ll[0] > ll[1]
    assert load_model("smollm2").dim == bb.dim == 576  # second load reads the cached copy


_TINY = load_model("tiny-encoder")


def _embed_before(bb, texts, batch_size=64):
    """What ``embed`` returned on a cold cache before the list cache (issue 18): unique texts
    in order of first appearance, through the model in batches of ``batch_size``."""
    todo = list(dict.fromkeys(texts))
    vecs = {}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        with torch.no_grad():
            vecs.update(zip(chunk, bb.pooled(**bb.tokenize(chunk)).numpy(), strict=True))
    return np.array([vecs[t] for t in texts], dtype=np.float32).reshape(len(texts), bb.dim)


WORDS = ["tent", "red dress", "coffee", "a lamp for the desk", "shoes"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=8), st.integers(1, 3))
def test_embed_is_bit_identical_to_the_batches_it_ran(texts, batch_size):
    bb = _TINY
    bb.clear_cache()
    first = bb.embed(texts, batch_size=batch_size)
    np.testing.assert_array_equal(first, _embed_before(bb, texts, batch_size))
    again = bb.embed(list(texts), batch_size=batch_size)  # a new list, same texts
    assert again is first and not again.flags.writeable
    shuffled = texts[::-1]
    np.testing.assert_array_equal(bb.embed(shuffled), first[::-1])  # per-text cache hits


def test_list_cache_follows_the_version_and_the_per_text_cache():
    bb = load_model("tiny-encoder")
    bb.cache_size = 2
    first = bb.embed(["tent", "coffee"])
    bb.active_version = "other"
    assert bb.embed(["tent", "coffee"]) is not first  # another adapter version: no hit
    bb.active_version = "base"
    assert bb.embed(["tent", "coffee"]) is not first  # evicted per text: lists dropped too
    bb.cache_size = 10
    kept = bb.embed(["tent", "coffee"])
    bb.clear_cache()
    assert bb.embed(["tent", "coffee"]) is not kept and bb.cached == 2


def _save_folder(path, model) -> str:
    """A local Hugging Face folder: ``model`` and the tiny tokenizer."""
    from agents.tiny import tiny_tokenizer

    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def _small(config_cls, **shape):
    from agents.tiny import tiny_tokenizer

    return config_cls(vocab_size=len(tiny_tokenizer()), **shape)


def test_kind_comes_from_the_config_not_the_class_name(tmp_path):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(_small(GPT2Config, n_embd=32, n_layer=2, n_head=2, n_positions=64))
    gpt2_dir = _save_folder(tmp_path / "gpt2", gpt2)  # class GPT2LMHeadModel: no "ForCausalLM"
    bert = BertModel(
        _small(
            BertConfig,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        add_pooling_layer=False,
    )
    bert_dir = _save_folder(tmp_path / "bert", bert)
    causal = load_model(gpt2_dir)
    assert causal.kind == "causal" and causal.loglik("red dress", [" shoes", " tent"]).shape == (2,)
    assert load_model(bert_dir).kind == "encoder"
    assert load_model(gpt2_dir, kind="encoder").kind == "encoder"  # kind= still overrides
    with pytest.raises(AgentError, match="causal"):
        load_model(bert_dir).loglik("x", ["y"])
