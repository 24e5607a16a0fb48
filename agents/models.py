"""Model backends: one shared base model (encoder or causal LM) with swappable LoRA adapters.

A :class:`Backbone` wraps a Hugging Face model and its tokenizer. Every backend embeds text the
same way (mean of the last hidden states over real tokens, L2-normalised); causal LMs also score
continuations by log-likelihood, reusing the context's key/value cache across candidates.

Many agents share one backbone: ``enable_lora`` wraps the model in peft once, and each agent
swaps its own adapter weights in (``activate``) before use. Embeddings are cached per
``(adapter version, text)``, so agents holding the same adapter (e.g. the global one after a
federated round) share cached ad embeddings; the rows live in a few large blocks
(:class:`~agents.row_store.RowStore`), not one small array each. The last few embedded lists
are also kept whole, keyed by ``(adapter version, tuple of texts)``, so asking again for the
same candidates (an agent's ads on every impression) returns the stored matrix without a
lookup per text.

``load_model`` is offline by construction: built-in names resolve to installed packages, other
names load with ``local_files_only=True``, and anything missing raises
:class:`ModelNotFoundError` at once.

Example:
    >>> bb = load_model("tiny-encoder")
    >>> bb.embed(["red dress", "coffee"]).shape
    (2, 32)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from . import weights
from ._errors import AgentError, ModelNotFoundError
from .row_store import RowStore
from .tiny import tiny_model

Kind = Literal["encoder", "causal"]

MINILM_NAMES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
SMOLLM2_NAMES = ("smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct")
TINY_NAMES = {"tiny-encoder": "encoder", "tiny-causal": "causal"}
BASE_VERSION = "base"
LIST_CACHE_ENTRIES = 16  # whole embedded lists kept (least recently used dropped)
LIST_CACHE_ROWS = 4096  # longer lists are not kept whole (their rows stay cached per text)
PREFIX_CACHE_ENTRIES = 8  # contexts whose key/value cache is kept (a few agents' prompts)


class Backbone:
    """A shared base model, its tokenizer, an optional LoRA wrapper and an embedding cache.

    Args:
        name: display name (what ``load_model`` was given).
        model: a Hugging Face encoder (``AutoModel``) or causal LM (``AutoModelForCausalLM``).
        tokenizer: its tokenizer.
        kind: ``"encoder"`` or ``"causal"``.
        max_length: tokens kept per text (longer texts are truncated).
        cache_size: most cached embeddings (least recently used are dropped).

    The matrices :meth:`embed` returns are read-only: a repeated list gets the stored one.
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer: Any,
        kind: Kind,
        *,
        max_length: int = 64,
        cache_size: int = 200_000,
    ) -> None:
        if kind not in ("encoder", "causal"):
            raise AgentError(f"kind must be 'encoder' or 'causal', got {kind!r}")
        self.name, self.kind, self.tokenizer = name, kind, tokenizer
        self.max_length = max_length
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        # Eager attention: the sdpa path inspects mask values, which torch.func.vmap refuses.
        model.set_attn_implementation("eager")
        self.model = model.eval().requires_grad_(False)
        self.lora: Any = None  # the peft config once enable_lora ran
        self.states: Any = None  # the interned adapter + head states (lora.StateTable), idem
        self.initial_adapter: dict[str, np.ndarray] = {}
        self.active_version = BASE_VERSION
        self._lists: OrderedDict[tuple[str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._ll: OrderedDict[tuple[str, str, str, int | None], np.ndarray] = OrderedDict()
        self._ll_lists: OrderedDict[tuple[str, str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._prefixes: OrderedDict[tuple[str, str], tuple[torch.Tensor, list]] = OrderedDict()
        self._token_ids: dict[str, tuple[int, ...]] = {}  # continuation -> ids (any adapter)
        self._dim = int(model.config.hidden_size)  # read once: peft's attribute chain is slow
        self._cache = RowStore(self._dim, cache_size)  # per (adapter version, text)

    @property
    def cache_size(self) -> int:
        """Most cached embeddings (and log-likelihoods); lowering it drops the oldest."""
        return self._cache.capacity

    @cache_size.setter
    def cache_size(self, size: int) -> None:
        self._cache.capacity = size

    @property
    def dim(self) -> int:
        """Width of the embeddings (the model's hidden size)."""
        return self._dim

    @property
    def core(self) -> torch.nn.Module:
        """The transformer body (no LM head): what embeddings and LoRA training run through."""
        inner = self.model.get_base_model() if self.lora is not None else self.model
        return inner.base_model

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded ``input_ids`` and ``attention_mask``, (n, T) int64."""
        if isinstance(texts, str):
            raise AgentError("texts must be a sequence of strings, got a single str")
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(n, d) unit-norm mean-pooled embeddings; differentiable and safe under ``vmap``.

        ``params`` replaces some of ``core``'s parameters (by name) for this call only, the
        way ``torch.func.functional_call`` does: it is how training differentiates the adapter.
        """
        mask = attention_mask.to(torch.float32)
        if self.kind == "encoder":
            # A ready 4-D additive mask skips transformers' mask building (not vmap-safe).
            mask_arg = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        else:
            mask_arg = attention_mask
        inputs = {"input_ids": input_ids, "attention_mask": mask_arg}
        hidden = torch.func.functional_call(self.core, params or {}, (), inputs).last_hidden_state
        summed = (hidden * mask[..., None]).sum(-2) / mask.sum(-1, keepdim=True).clamp_min(1.0)
        return torch.nn.functional.normalize(summed, dim=-1)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """(n, d) float32 unit-norm embeddings under the active adapter, cached per version.

        Read-only: a list embedded recently (same adapter version, same texts in the same
        order) returns the very matrix stored for it.
        """
        if isinstance(texts, str):
            raise AgentError("texts must be a sequence of strings, got a single str")
        key = (self.active_version, tuple(texts))
        out = self._lists.get(key)
        if out is not None:
            self._lists.move_to_end(key)
            return out
        return _keep_list(self._lists, key, self._rows(texts, batch_size))

    def _rows(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """(n, d) embeddings from the per-text cache; each missing text runs through the model
        once, in batches of ``batch_size`` in order of first appearance."""
        version = self.active_version
        keys = [(version, text) for text in texts]
        found, hits = self._cache.get(keys)
        if found.min(initial=0) >= 0:
            return hits
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[found >= 0] = hits
        missing = np.flatnonzero(found < 0)
        todo = list(dict.fromkeys(texts[i] for i in missing))
        fresh = np.empty((len(todo), self.dim), dtype=np.float32)
        for start in range(0, len(todo), batch_size):
            with torch.no_grad():
                fresh[start : start + batch_size] = self.pooled(
                    **self.tokenize(todo[start : start + batch_size])
                ).numpy()
        position = {text: i for i, text in enumerate(todo)}
        out[missing] = fresh[[position[texts[i]] for i in missing]]
        dropped = len(self._cache) + len(todo) > self.cache_size
        self._cache.put([(version, text) for text in todo], fresh)
        if dropped:
            self._lists.clear()  # a dropped text is embedded afresh next time: so are lists
        return out

    def require_causal(self, purpose: str, hint: str = "") -> None:
        """Raise :class:`AgentError` "<purpose> needs a causal LM; <name> is an encoder
        <hint>" unless this is a causal backbone (the one check every causal-only path runs)."""
        if self.kind != "causal":
            raise AgentError(f"{purpose} needs a causal LM; {self.name!r} is an encoder{hint}")

    def loglik(
        self, context: str, continuations: Sequence[str], *, batch_size: int = 64
    ) -> np.ndarray:
        """(n,) float64 mean log-probability per token of each continuation after ``context``.

        The per-token values come from :meth:`token_logprobs` (cached there); whole lists are
        also cached per ``(adapter version, context, tuple of continuations)``, so a repeated
        candidate list is one lookup. Read-only, like :meth:`embed`. Causal backends only.
        """
        self.require_causal("loglik")
        if isinstance(continuations, str):
            raise AgentError("continuations must be a sequence of strings, got a single str")
        key = (self.active_version, context, tuple(continuations))
        out = self._ll_lists.get(key)
        if out is not None:
            self._ll_lists.move_to_end(key)
            return out
        rows = self.token_logprobs(context, continuations, batch_size=batch_size)
        out = np.array([row.sum() / max(len(row), 1) for row in rows], dtype=np.float64)
        return _keep_list(self._ll_lists, key, out)

    def token_logprobs(
        self,
        context: str,
        continuations: Sequence[str],
        *,
        max_tokens: int | None = None,
        batch_size: int = 64,
    ) -> list[np.ndarray]:
        """Log-probability (nats) of each token of each continuation after ``context``: one
        read-only float64 array per continuation, of its first ``max_tokens`` tokens (all of
        them when None).

        The context runs once per ``(adapter version, context)``; its key/value cache is kept
        (the last :data:`PREFIX_CACHE_ENTRIES` contexts) and shared, without a copy, by the
        candidates, which run as right-padded batches of ``batch_size`` (shortest texts
        first). A continuation's first token is read from the context's last logits, so
        ``max_tokens=1`` runs no candidate through the model, and ``max_tokens=k`` runs
        ``k - 1`` positions of each. Rows are cached per ``(adapter version, context,
        continuation, max_tokens)`` (least recently used dropped past ``cache_size``).
        Causal backends only.

        Raises:
            AgentError: an encoder backbone, a single string, ``max_tokens`` < 1.
        """
        self.require_causal("token_logprobs")
        if isinstance(continuations, str):
            raise AgentError("continuations must be a sequence of strings, got a single str")
        check_token_count(max_tokens, "max_tokens", "", "all")
        cache, version = self._ll, self.active_version
        keys = [(version, context, text, max_tokens) for text in continuations]
        todo = list(dict.fromkeys(k[2] for k in keys if k not in cache))
        todo.sort(key=len)  # batches of similar lengths: less padding through the body
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for text, row in zip(chunk, self._token_rows(context, chunk, max_tokens), strict=True):
                cache[(version, context, text, max_tokens)] = row
        rows = []
        for key in keys:
            cache.move_to_end(key)
            rows.append(cache[key])
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return rows

    def _prefix(self, context: str) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """The context's last-position logits (1, 1, V) and per-layer key/value tensors,
        computed once per ``(adapter version, context)`` (LRU)."""
        key = (self.active_version, context)
        found = self._prefixes.get(key)
        if found is not None:
            self._prefixes.move_to_end(key)
            return found
        ctx = self.tokenizer(context, return_tensors="pt")
        with torch.no_grad():
            first = self.model(**ctx, use_cache=True)
        kv = [(layer.keys, layer.values) for layer in first.cache.layers]
        found = self._prefixes[key] = (first.logits[:, -1:], kv)
        if len(self._prefixes) > PREFIX_CACHE_ENTRIES:
            self._prefixes.popitem(last=False)
        return found

    def _continuation_ids(self, continuations: Sequence[str]) -> list[tuple[int, ...]]:
        """Token ids of each continuation (no special tokens), cached per text: a new context
        re-reads the same candidates, and tokenizing 100 of them costs more than a small
        model's forward pass."""
        ids = self._token_ids
        todo = list(dict.fromkeys(t for t in continuations if t not in ids))
        if todo:
            encoded = self.tokenizer(todo, add_special_tokens=False)["input_ids"]
            ids.update(zip(todo, map(tuple, encoded), strict=True))
            while len(ids) > self.cache_size:
                ids.pop(next(iter(ids)))
        return [ids[t] for t in continuations]

    def _token_rows(
        self, context: str, continuations: list[str], max_tokens: int | None
    ) -> list[np.ndarray]:
        """Token log-probabilities of ``continuations`` (one batch) after ``context``, each cut
        to its first ``max_tokens`` tokens.

        The body runs over the padded batch less its last column (whose output predicts
        nothing); the LM head and the softmax over the vocabulary run only at positions whose
        next token is real (a third of a 49k-vocabulary model's cost at these lengths, and
        padding would waste it)."""
        from transformers import DynamicCache

        last, kv = self._prefix(context)
        tokens = [t[:max_tokens] for t in self._continuation_ids(continuations)]
        n, width, length = len(tokens), max(1, *map(len, tokens)), kv[0][0].shape[-2]
        ids = torch.full((n, width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, t in enumerate(tokens):  # right padding, as the tokenizer's
            ids[i, : len(t)], mask[i, : len(t)] = torch.tensor(t), 1
        real = mask.bool()
        out = torch.zeros(n, width)
        with torch.no_grad():
            # token 0 is predicted by the context's last position, token t + 1 by position t
            out[:, 0] = torch.log_softmax(last[0, 0].float(), -1)[ids[:, 0]]
            if width > 1:
                # expand, not repeat: the stored prefix is only read (attention concatenates)
                cache = DynamicCache(
                    [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv]
                )
                hidden = self.core(
                    input_ids=ids[:, :-1],
                    attention_mask=torch.cat(
                        [torch.ones(n, length, dtype=torch.long), mask[:, :-1]], 1
                    ),
                    position_ids=torch.arange(length, length + width - 1).expand(n, -1),
                    cache=cache,
                ).last_hidden_state
                nxt = real[:, 1:]
                logits = self.model.get_output_embeddings()(hidden[nxt]).float()
                picked = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:][nxt][:, None])
                out[:, 1:][nxt] = picked[:, 0]
        rows = out.double().numpy()
        kept: list[np.ndarray] = []
        for row, count in zip(rows, real.sum(1).tolist(), strict=True):
            row = row[:count]
            row.flags.writeable = False
            kept.append(row)
        return kept

    @property
    def cached(self) -> int:
        """Number of cached embeddings."""
        return len(self._cache)

    def clear_cache(self) -> None:
        """Drop every cached embedding and log-likelihood (per text, per list, per context)."""
        self._cache.clear()
        self._lists.clear()
        self._ll.clear()
        self._ll_lists.clear()
        self._prefixes.clear()
        self._token_ids.clear()


def check_token_count(k: int | None, name: str, int_means: str, none_means: str) -> int | None:
    """``k`` after checking it is None or an int >= 1 (not a bool); the error names ``name``
    and what an int (``int_means``, may be empty) and None (``none_means``) mean."""
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise AgentError(f"{name} must be an int >= 1{int_means} or None ({none_means}), got {k!r}")
    return k


def _keep_list(lists: OrderedDict[Any, np.ndarray], key: Any, out: np.ndarray) -> np.ndarray:
    """Make ``out`` read-only and keep it whole under ``key`` (LRU of
    :data:`LIST_CACHE_ENTRIES` lists of at most :data:`LIST_CACHE_ROWS` rows); return it."""
    out.flags.writeable = False
    if len(out) <= LIST_CACHE_ROWS:
        lists[key] = out
        if len(lists) > LIST_CACHE_ENTRIES:
            lists.popitem(last=False)
    return out


def detect_kind(config: Any) -> Kind:
    """``"causal"`` or ``"encoder"``, read from a Hugging Face config (never the class name).

    Causal: a config marked ``is_decoder``, or a ``model_type`` transformers maps to a causal-LM
    class that has no masked-LM form (GPT-2, Llama, Mistral, Qwen2, OPT, ...). Encoder:
    everything else, including encoder-decoder (seq2seq) configs and masked-LM families such as
    BERT (which transformers can also run as a decoder, but only when ``is_decoder`` says so).

    Example:
        >>> from transformers import BertConfig, GPT2Config
        >>> detect_kind(GPT2Config()), detect_kind(BertConfig())
        ('causal', 'encoder')
        >>> detect_kind(BertConfig(is_decoder=True))
        'causal'
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder"
    if getattr(config, "is_decoder", False):
        return "causal"
    model_type = getattr(config, "model_type", "")
    causal_only = (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    return "causal" if causal_only else "encoder"


def _local_model(path: str | Path, kind: Kind | None) -> tuple[Any, Any, Kind]:
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(
            f"name_or_path {str(path)!r} is not a built-in name ({', '.join(builtin_names())}), "
            "a local model folder, or a Hugging Face id already in the local cache "
            "(no download is attempted)"
        ) from err
    kind = kind or detect_kind(config)
    auto = AutoModelForCausalLM if kind == "causal" else AutoModel
    return auto.from_pretrained(path, local_files_only=True), tokenizer, kind


def builtin_names() -> tuple[str, ...]:
    """Names ``load_model`` resolves without a path."""
    return ("minilm", "smollm2", *TINY_NAMES)


def load_model(
    name_or_path: str | Path | None = None,
    *,
    kind: Kind | None = None,
    max_length: int = 64,
) -> Backbone:
    """Load a backbone without touching the network.

    Args:
        name_or_path: ``None`` or ``"minilm"`` (the embedded all-MiniLM-L6-v2 encoder),
            ``"smollm2"`` (SmolLM2-135M-Instruct, dequantized once into the local cache),
            ``"tiny-encoder"`` / ``"tiny-causal"`` (random 2-layer test models), a local Hugging
            Face folder, or a hub id present in the local Hugging Face cache.
        kind: force ``"encoder"`` or ``"causal"`` for a folder or hub id (default:
            :func:`detect_kind` of its config).
        max_length: tokens kept per text.

    Raises:
        ModelNotFoundError: the name is unknown and no local files exist for it.
    """
    name = "minilm" if name_or_path is None else str(name_or_path)
    key = name.lower()
    if key in TINY_NAMES:
        model, tokenizer = tiny_model(TINY_NAMES[key])
        return Backbone(name, model, tokenizer, TINY_NAMES[key], max_length=max_length)
    if key in MINILM_NAMES:
        model, tokenizer, found = _local_model(weights.minilm_folder(), "encoder")
    elif key in SMOLLM2_NAMES:
        model, tokenizer, found = _local_model(weights.smollm2_folder(), "causal")
    else:
        model, tokenizer, found = _local_model(name, kind)
    return Backbone(name, model, tokenizer, found, max_length=max_length)
