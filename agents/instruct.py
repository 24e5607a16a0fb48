"""Instruction-format examples from a user's own log and DP-SGD on a causal LM's LoRA adapter.

FlowerTune-style fine-tuning of the causal backbone (``load_model("smollm2")`` or
``"tiny-causal"``): each example is an instruction built from what the user viewed and the
title of a movie they went on to like as the response,

    ### Instruction: Given that the user viewed <t1>; <t2>; ..., name a movie they will like.
    ### Response: <title><eos>

tokenized right-padded to at most ``max_length`` tokens (the prompt is cut from the left when
too long; the response keeps at most half the length), with ``labels = -100`` on the prompt
and the padding, so the loss is the cross entropy of the response tokens only (Hugging Face's
convention: position ``t`` predicts token ``t + 1``). The prompt is tokenized exactly as
``Backbone.loglik`` tokenizes a context and the response as its continuation, so what training
raises is what log-likelihood ranking reads.

:func:`train_causal` is DP-SGD on the adapter alone with the schedule and accountant of
:func:`agents.training.plan` (Poisson batches) and the clipped, noised gradient of
:func:`agents.dp_sgd.private_gradient`. Per-example gradients come from one right-padded
batched forward and one ordinary backward with forward hooks on the LoRA ``nn.Linear`` layers
(:func:`agents.dp_sgd.linear_tape`), instead of ``torch.func.vmap``: this keeps gradient
checkpointing usable (:func:`enable_checkpointing`), which is what brings a SmolLM2-135M step
under 4 GB, and the stacked per-example gradients are only the adapter's (B x 0.46 M floats
for rank 8 on q_proj, v_proj). An adapter on other layers falls back to one backward per
example (its own length, no padding).

Example:
    >>> from agents import enable_lora, load_model
    >>> bb = load_model("tiny-causal")
    >>> state = enable_lora(bb, rank=2)
    >>> batch = encode(bb.tokenizer, [instruction(["Heat (1995)"])], [" Fargo (1996)"],
    ...                max_length=64)
    >>> batch.input_ids.shape[1] <= 64, int((batch.labels != IGNORE).sum()) > 0
    (True, True)
    >>> fit = train_causal(bb, state, batch, epochs=1, batch_size=1, max_grad_norm=1.0,
    ...                    noise_multiplier=1.0, rng=0)
    >>> fit.plan.steps, sorted(fit.state) == sorted(state)
    (1, True)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._errors import AgentError
from .dp_sgd import linear_owners, linear_tape
from .lora import activate, adapter_parameters, state_version
from .models import Backbone
from .training import RngLike, TrainResult, plan, private_steps

IGNORE = -100  # label of a position that is not scored (prompt, padding): torch's ignore_index
PROMPT = (
    "### Instruction: Given that the user viewed {history}, name a movie they will like.\n"
    "### Response:"
)


def movie_title(text: str) -> str:
    """The title of a MovieLens movie text (``"Title (year). Genres: a, b"`` -> ``"Title
    (year)"``)."""
    return text.split(". Genres:", 1)[0]


def instruction(history: Sequence[str]) -> str:
    """The prompt for a user who viewed ``history`` (titles, oldest first).

    Example:
        >>> instruction(["Heat (1995)", "Fargo (1996)"]).splitlines()[1]
        '### Response:'
    """
    if isinstance(history, str) or not history:
        raise AgentError("history must be a non-empty sequence of titles")
    return PROMPT.format(history="; ".join(history))


@dataclass(frozen=True)
class Batch:
    """Tokenized examples, right-padded: ``input_ids``, ``attention_mask`` and ``labels``, each
    (n, T) int64, ``T <= max_length``; ``labels`` is ``input_ids`` with ``IGNORE`` on the prompt
    and the padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def example(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Example ``i`` without its padding: (1, T_i) input ids and labels."""
        length = int(self.attention_mask[i].sum())
        return self.input_ids[i : i + 1, :length], self.labels[i : i + 1, :length]


def encode(
    tokenizer: object, prompts: Sequence[str], responses: Sequence[str], *, max_length: int = 128
) -> Batch:
    """Tokenize prompt/response pairs (see the module doc): the response ends with EOS.

    Args:
        tokenizer: the backbone's tokenizer (``Backbone.tokenizer``).
        prompts: (n,) instructions (:func:`instruction`).
        responses: (n,) responses, each starting with a space (``" Fargo (1996)"``).
        max_length: most tokens per example, >= 8.
    """
    if isinstance(prompts, str) or isinstance(responses, str):
        raise AgentError("prompts and responses must be sequences of strings, not a str")
    if len(prompts) != len(responses) or not prompts:
        raise AgentError(
            f"prompts and responses need equal, non-zero lengths, got {len(prompts)}, "
            f"{len(responses)}"
        )
    if int(max_length) != max_length or max_length < 8:
        raise AgentError(f"max_length must be an integer >= 8, got {max_length}")
    eos = tokenizer.eos_token_id  # type: ignore[attr-defined]
    rows = []
    for prompt, response in zip(prompts, responses, strict=True):
        p = tokenizer(prompt)["input_ids"]  # type: ignore[operator]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        r = [*r[: max_length // 2 - 1], eos]  # a cut response still ends (EOS)
        p = p[-(max_length - len(r)) :]  # the newest part of the prompt survives
        rows.append((p, r))
    width = max(len(p) + len(r) for p, r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos  # type: ignore[attr-defined]
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)
        mask[i, : len(p) + len(r)] = 1
    return Batch(ids, mask, labels)


def response_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(n,) each example's mean cross entropy (nats/token) over its response tokens.

    ``logits`` (n, T, V) at position ``t`` predict ``labels[:, t + 1]``; positions labelled
    ``IGNORE`` are not scored.
    """
    shifted, targets = logits[:, :-1].float(), labels[:, 1:]
    scored = targets != IGNORE
    ce = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]),
        targets.clamp_min(0).reshape(-1),
        reduction="none",
    ).view(targets.shape)
    return (ce * scored).sum(1) / scored.sum(1).clamp_min(1)


def example_loss(backbone: Backbone, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One unpadded example's mean response cross entropy (nats/token, a 0-d tensor).

    Equal to :func:`response_losses` on the model's full logits, but the LM head runs only at
    the positions that predict a response token: SmolLM2's 49,152-word head over a 76-token
    example is about a fifth of its forward pass, and the response is a few tokens.

    Args:
        input_ids, labels: (1, T) int64 (``Batch.example``).
    """
    body = backbone.core(input_ids=input_ids, use_cache=False).last_hidden_state
    return _head_losses(backbone, body, labels)[0]


def _head_losses(backbone: Backbone, body: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean response cross entropy of each row from the transformer's (B, T, H) output,
    the LM head applied at the (row, position) pairs that predict a response token only."""
    rows, pos = torch.nonzero(labels[:, 1:] != IGNORE, as_tuple=True)
    base = backbone.model.get_base_model() if backbone.lora is not None else backbone.model
    logits = base.get_output_embeddings()(body[rows, pos]).float()
    ce = torch.nn.functional.cross_entropy(logits, labels[rows, pos + 1], reduction="none")
    counts = torch.bincount(rows, minlength=len(labels)).clamp_min(1)
    return ce.new_zeros(len(labels)).index_add(0, rows, ce) / counts


def enable_checkpointing(backbone: Backbone) -> None:
    """Gradient checkpointing on the backbone's model (non-reentrant, as peft needs): a
    training step keeps one layer's activations instead of all of them. It is active only in
    training mode, so scoring and embedding are unchanged."""
    backbone.require_causal("causal-LM training")
    base = backbone.model.get_base_model() if backbone.lora is not None else backbone.model
    # transformers 5 renamed gradient_checkpointing_enable (a deprecated alias now)
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    base.enable_input_require_grads()  # peft: the frozen embeddings' output must carry grads


@contextmanager
def _training(backbone: Backbone) -> Iterator[dict[str, torch.nn.Parameter]]:
    """The adapter's parameters with gradients on and the model in training mode (so
    checkpointing runs); everything frozen and in eval mode again afterwards."""
    params = adapter_parameters(backbone)
    backbone.model.train()
    for p in params.values():
        p.requires_grad_(True)
    try:
        yield params
    finally:
        for p in params.values():
            p.requires_grad_(False)
            p.grad = None
        backbone.model.eval()


def _example_gradients(
    backbone: Backbone, params: Mapping[str, torch.nn.Parameter], batch: Batch, idx: np.ndarray
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Per-example gradients ((B, ...) per parameter) and losses of the examples ``idx``.

    The adapter's layers are ``nn.Linear`` (peft's LoRA): one right-padded forward of the B
    examples (cut to the longest of them; right padding changes no real token's output under
    the causal mask) through :func:`~agents.dp_sgd.linear_tape` and one backward. Checkpointing
    still applies: its recomputation runs after the hooks are gone. Otherwise (decided by
    :func:`~agents.dp_sgd.linear_owners`) one ordinary backward per example.
    """
    if not len(idx):
        return {}, []
    if not linear_owners(backbone.core, params):
        return _loop_example_gradients(backbone, params, batch, idx)
    rows = torch.as_tensor(idx)
    width = int(batch.attention_mask[rows].sum(1).max())
    ids, mask, labels = (
        t[rows, :width] for t in (batch.input_ids, batch.attention_mask, batch.labels)
    )
    with linear_tape(backbone.core, params) as tape:
        body = backbone.core(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    losses = _head_losses(backbone, body, labels)
    return tape.gradients(losses.sum()), losses.detach().tolist()


def _loop_example_gradients(
    backbone: Backbone, params: Mapping[str, torch.nn.Parameter], batch: Batch, idx: np.ndarray
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """:func:`_example_gradients` one example at a time (its own length, no padding)."""
    names = list(params)
    rows: list[tuple[torch.Tensor, ...]] = []
    losses = []
    for i in idx:
        loss = example_loss(backbone, *batch.example(int(i)))
        rows.append(torch.autograd.grad(loss, [params[n] for n in names]))
        losses.append(float(loss.detach()))
    return {n: torch.stack([row[j] for row in rows]) for j, n in enumerate(names)}, losses


def train_causal(
    backbone: Backbone,
    state: Mapping[str, np.ndarray],
    batch: Batch,
    *,
    epochs: float = 1.0,
    batch_size: int = 4,
    lr: float = 2e-3,
    max_grad_norm: float | None = 1.0,
    noise_multiplier: float = 0.0,
    delta: float = 1e-5,
    rng: RngLike = None,
) -> TrainResult:
    """DP-SGD (Adam on the private gradient) of the LoRA adapter from ``state`` on ``batch``.

    Args:
        backbone: causal backbone with LoRA enabled (checkpointing optional).
        state: the adapter to start from (fp32 arrays, ``adapter_state``'s keys); unchanged.
        batch: :func:`encode`'s examples; one example is the unit of privacy.
        epochs, batch_size: steps = max(1, round(epochs * n / batch_size)), Poisson rate
            ``min(1, batch_size / n)`` (:func:`agents.training.plan`).
        lr: Adam learning rate.
        max_grad_norm: per-example clipping norm; None: no clipping (no DP).
        noise_multiplier: Gaussian noise std / clipping norm (0: no noise, epsilon inf).
        delta: delta of the plan's epsilon.
        rng: seed of the sampling and the noise.

    Returns:
        ``TrainResult``: the new adapter (fp32), the plan (epsilon at ``delta``), and the
        mean response loss (nats/token) of each non-empty step. The backbone holds the new
        adapter afterwards (its version updated).
    """
    backbone.require_causal("causal-LM training")
    n = len(batch)
    the_plan = plan(
        n,
        epochs=epochs,
        batch_size=batch_size,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        delta=delta,
    )
    gen = np.random.default_rng(rng)
    activate(backbone, state, state_version(state))
    with _training(backbone) as params:

        def example_gradients(idx: np.ndarray) -> tuple[dict[str, torch.Tensor], float | None]:
            grads, values = _example_gradients(backbone, params, batch, idx)
            return grads, float(np.mean(values)) if values else None

        losses = private_steps(params, the_plan, n, example_gradients, lr=lr, gen=gen)
        new = {k: p.detach().numpy().astype(np.float32).copy() for k, p in params.items()}
    backbone.active_version = state_version(new)  # the model now holds the trained adapter
    return TrainResult(new, the_plan, tuple(losses))


def mean_response_loss(
    backbone: Backbone, state: Mapping[str, np.ndarray], batch: Batch, *, chunk: int = 8
) -> float:
    """Mean cross entropy (nats/token) over every response token of ``batch`` under ``state``
    (token-weighted, as Hugging Face's ``labels=`` loss of the whole batch)."""
    activate(backbone, state, state_version(state))
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(batch), chunk):
            sl = slice(start, start + chunk)
            logits = backbone.model(
                input_ids=batch.input_ids[sl], attention_mask=batch.attention_mask[sl]
            ).logits
            counts = (batch.labels[sl, 1:] != IGNORE).sum(1)
            total += float((response_losses(logits, batch.labels[sl]) * counts).sum())
            tokens += int(counts.sum())
    return total / max(tokens, 1)


def save_peft(backbone: Backbone, state: Mapping[str, np.ndarray], folder: str | Path) -> Path:
    """Write ``state`` as a Hugging Face PEFT adapter folder (``adapter_config.json`` +
    ``adapter_model.safetensors``, loadable with ``peft.PeftModel.from_pretrained(base,
    folder)``), atomically: a temporary folder renamed into place (an old one replaced)."""
    if backbone.lora is None:
        raise AgentError("LoRA is not enabled on this backbone; call enable_lora first")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    activate(backbone, state, state_version(state))
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        backbone.model.save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
