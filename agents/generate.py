"""Text from a causal LM on the device: seeded generation and choice among options.

The one place agents call a causal LM's ``generate``: negotiation offers, LLM bidders and
natural-language explanations all go through :func:`generate` (wording) or :func:`choose`
(a decision among listed options by log-likelihood, which cannot produce an unparseable
answer). Generation is seeded locally (``torch.Generator``-free: a forked RNG state), so the
same prompt and seed give the same text and the global torch RNG is left untouched.

Example:
    >>> from agents import load_model
    >>> bb = load_model("tiny-causal")
    >>> text = generate(bb, "offer:", max_new_tokens=4, seed=0)
    >>> text == generate(bb, "offer:", max_new_tokens=4, seed=0)
    True
    >>> choose(bb, "the best price is", ["10", "20"]) in (0, 1)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._errors import AgentError
from .models import Backbone


def generate(
    backbone: Backbone,
    prompt: str,
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """The continuation of ``prompt`` (new text only, special tokens dropped).

    Args:
        backbone: a causal backbone (``load_model("smollm2")`` or ``"tiny-causal"``).
        prompt: the text to continue.
        max_new_tokens: most tokens generated, >= 1.
        temperature: 0 for greedy decoding, > 0 to sample at that temperature.
        seed: seeds the sampling (ignored when greedy).

    Raises:
        AgentError: an encoder backbone, or arguments out of range (named).
    """
    backbone.require_causal("text generation")
    if max_new_tokens < 1:
        raise AgentError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise AgentError(f"temperature must be finite and >= 0, got {temperature!r}")
    tok = backbone.tokenizer
    inputs = tok(prompt, return_tensors="pt")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    sample = temperature > 0
    extra = {"temperature": temperature, "top_k": 0} if sample else {}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        out = backbone.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            pad_token_id=pad,
            **extra,
        )
    return tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def choose(backbone: Backbone, prompt: str, options: Sequence[str]) -> int:
    """Index of the option the LM finds most likely after ``prompt`` (mean token log-prob).

    Ties go to the lowest index. Raises :class:`AgentError` for no options or an encoder.
    """
    backbone.require_causal("text generation")
    if len(options) == 0:
        raise AgentError("choose needs at least one option")
    scores = backbone.loglik(prompt, [" " + o.strip() for o in options])
    return int(np.argmax(scores))
