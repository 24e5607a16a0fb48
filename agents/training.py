"""Fine-tune a LoRA adapter and the scoring head on clicks, with DP-SGD.

Each training example is ``(context vector, ad text, click)``, with the exchange's prior of
the ad as an optional feature. The ad runs through the shared
backbone with the adapter being trained; the context vector is a constant of the step (it is
recomputed by the caller between rounds), so the unit of privacy is one click-log row.
Batches are Poisson-sampled with rate ``q = min(1, batch_size / n)`` for ``steps = max(1,
round(epochs * n / batch_size))`` steps (any ``n >= 1`` trains), which is what the accountant in
:mod:`agents.privacy` assumes; the optimizer is Adam applied to the private gradient
(post-processing, so no extra privacy cost).

Example:
    >>> from agents.models import load_model
    >>> from agents.lora import enable_lora
    >>> from agents.scoring import initial_head
    >>> bb = load_model("tiny-encoder")
    >>> state = {**enable_lora(bb, rank=2), **initial_head(bb.dim)}
    >>> ctx = bb.embed(["red dress"]).repeat(4, 0)
    >>> fit = train(bb, state, ctx, ["red shoes", "coffee", "a dress", "tent"], [1, 0, 1, 0],
    ...             epochs=1, batch_size=2, noise_multiplier=1.0, rng=0)
    >>> fit.plan.steps, round(fit.plan.sample_rate, 2)
    (2, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import privacy
from ._errors import AgentError
from .dp_sgd import Grads, linear_owners, linear_tape, per_example_gradients, private_gradient
from .lora import activate, adapter_parameters, state_version
from .models import Backbone
from .scoring import HEAD_KEYS, torch_logits

RngLike = np.random.Generator | int | np.random.SeedSequence | None


@dataclass(frozen=True)
class Plan:
    """The DP-SGD schedule of a run and its privacy cost, known before it starts.

    ``epsilon`` is at ``delta``: ``inf`` without noise or clipping, 0 without steps.
    """

    sample_rate: float
    steps: int
    noise_multiplier: float
    max_grad_norm: float | None
    epsilon: float
    delta: float


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced: the new adapter + head ``state`` (fp32 arrays), its
    ``plan`` (privacy cost included) and the mean loss of each step."""

    state: dict[str, np.ndarray]
    plan: Plan
    losses: tuple[float, ...]


def plan(
    n: int,
    *,
    epochs: float = 1.0,
    batch_size: int = 16,
    max_grad_norm: float | None = 1.0,
    noise_multiplier: float = 0.0,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    accountant: str = "rdp",
) -> Plan:
    """Schedule of :func:`train` on ``n`` examples: rate ``min(1, batch_size / n)``,
    ``round(epochs * n / batch_size)`` steps but at least one when ``n >= 1`` (a device with
    fewer rows than half a batch still trains; the accountant charges that step at its true
    rate), none when ``n == 0``, and the noise multiplier (found from ``target_epsilon`` if given).

    Example:
        >>> plan(1000, epochs=2, batch_size=100, noise_multiplier=1.0).steps
        20
        >>> plan(1, batch_size=16).steps
        1
    """
    if int(n) != n or n < 0:
        raise AgentError(f"n must be an integer >= 0, got {n}")
    if not epochs > 0 or int(batch_size) != batch_size or batch_size < 1:
        raise AgentError(
            f"epochs must be > 0 and batch_size an integer >= 1, got {epochs}, {batch_size}"
        )
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise AgentError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
    rate = min(1.0, batch_size / max(n, 1))
    steps = max(1, round(epochs * n / batch_size)) if n else 0
    if target_epsilon is not None and steps:
        if max_grad_norm is None:
            raise AgentError("target_epsilon needs a max_grad_norm (DP-SGD clips)")
        noise_multiplier = privacy.noise_multiplier_for(
            target_epsilon, rate, steps, delta, accountant=accountant
        )
    if noise_multiplier < 0:
        raise AgentError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if steps == 0:
        eps = 0.0
    elif max_grad_norm is None or noise_multiplier == 0:
        eps = math.inf
    else:
        eps = privacy.epsilon(noise_multiplier, rate, steps, delta, accountant=accountant)
    return Plan(rate, steps, float(noise_multiplier), max_grad_norm, eps, delta)


def _check_inputs(contexts: np.ndarray, texts: Sequence[str], labels: np.ndarray, dim: int) -> None:
    if contexts.ndim != 2 or contexts.shape[1] != dim:
        raise AgentError(f"contexts must be (n, {dim}), got shape {contexts.shape}")
    if not len(contexts) == len(texts) == len(labels):
        raise AgentError(
            f"contexts, ad_texts and labels need equal lengths, got "
            f"{len(contexts)}, {len(texts)}, {len(labels)}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise AgentError("labels must be 0 or 1")


ExampleGradients = Callable[[np.ndarray], tuple[dict[str, torch.Tensor], float | None]]
"""``(idx) -> ((B, ...) per-example gradients by parameter, mean loss or None if B = 0)``."""


def private_steps(
    params: Mapping[str, torch.Tensor],
    the_plan: Plan,
    n: int,
    example_gradients: ExampleGradients,
    *,
    lr: float,
    gen: np.random.Generator,
) -> list[float]:
    """Adam on the private gradient for ``the_plan``'s steps, updating ``params`` in place.

    Each step draws its Poisson batch ``idx`` of the ``n`` examples from ``gen`` (rate
    ``the_plan.sample_rate``), asks ``example_gradients(idx)`` for the per-example gradients,
    and clips, sums and noises them (:func:`~agents.dp_sgd.private_gradient`, noise from a
    torch generator seeded first from ``gen``). Returns the mean loss of each non-empty step.
    The one DP-SGD loop of :func:`train` and :func:`agents.instruct.train_causal`.
    """
    noise = torch.Generator().manual_seed(int(gen.integers(2**62)))
    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    losses = []
    for _ in range(the_plan.steps):
        idx = np.flatnonzero(gen.random(n) < the_plan.sample_rate)
        grads, loss = example_gradients(idx)
        if loss is not None:
            losses.append(loss)
        noisy = private_gradient(
            grads,
            {k: p.detach() for k, p in params.items()},
            max_grad_norm=the_plan.max_grad_norm,
            noise_multiplier=the_plan.noise_multiplier,
            expected_batch_size=the_plan.sample_rate * n,
            generator=noise,
        )
        for k, p in params.items():
            p.grad = noisy[k]
        optimizer.step()
    return losses


def _bce(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none")


def click_gradients(
    backbone: Backbone,
    params: Mapping[str, torch.Tensor],
    batch: Sequence[torch.Tensor],
    *,
    head: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Grads, torch.Tensor]:
    """Per-example gradients of the click loss (what :func:`train` clips each step).

    Args:
        backbone: model with LoRA enabled.
        params: the trainable tensors: adapter parameters (named relative to
            ``backbone.core``) and any of the head's keys.
        batch: ``(input_ids (B, T), attention_mask (B, T), contexts (B, d), priors (B,),
            labels (B,))``.
        head: values of the head keys not in ``params`` (held constant).

    Returns:
        ``({name: (B, *shape)}, (B,) binary cross-entropy losses)``.

    When every adapter parameter is a weight or bias of an ``nn.Linear`` (peft's LoRA layers
    are), the transformer runs once batched and is differentiated once: the adapter's
    per-example gradients come from :func:`~agents.dp_sgd.linear_tape`, the head's (a few
    scalars and a (d,) gain) from ``vmap`` over the head alone given the (B, d) embeddings.
    Otherwise everything is ``vmap`` over one example
    (:func:`~agents.dp_sgd.per_example_gradients`). Both give the same gradients (to float
    rounding).
    """
    fixed = {k: v for k, v in (head or {}).items() if k not in params}
    missing = [k for k in HEAD_KEYS if k not in params and k not in fixed]
    if missing:
        raise AgentError(f"head keys {missing} are in neither params nor head")
    adapter = {k: v.detach() for k, v in params.items() if k not in HEAD_KEYS}
    trained_head = {k: v.detach() for k, v in params.items() if k in HEAD_KEYS}

    def head_loss(hp: Grads, emb, ctx, prior, y) -> torch.Tensor:
        return _bce(torch_logits(ctx, emb, {**fixed, **hp}, prior), y)

    if not linear_owners(backbone.core, adapter):

        def loss_one(p: Grads, ids, mask, ctx, prior, y) -> torch.Tensor:
            adapter_p = {k: v for k, v in p.items() if k not in HEAD_KEYS}
            emb = backbone.pooled(ids[None], mask[None], adapter_p)[0]
            return head_loss({k: v for k, v in p.items() if k in HEAD_KEYS}, emb, ctx, prior, y)

        return per_example_gradients(loss_one, {**adapter, **trained_head}, *batch)
    ids, mask, ctx, prior, y = batch
    adapter = {k: v.requires_grad_() for k, v in adapter.items()}  # fresh leaves of the tape
    with linear_tape(backbone.core, adapter) as tape:
        emb = backbone.pooled(ids, mask, adapter)
    losses = head_loss(trained_head, emb, ctx, prior, y)
    grads = tape.gradients(losses.sum())
    if trained_head:
        per_head = torch.func.vmap(torch.func.grad(head_loss), in_dims=(None, 0, 0, 0, 0))
        grads.update(per_head(trained_head, emb.detach(), ctx, prior, y))
    return grads, losses.detach()


def train(
    backbone: Backbone,
    state: Mapping[str, np.ndarray],
    contexts: np.ndarray,
    ad_texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    epochs: float = 1.0,
    batch_size: int = 16,
    lr: float = 5e-3,
    max_grad_norm: float | None = 1.0,
    noise_multiplier: float = 0.0,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    accountant: str = "rdp",
    priors: Sequence[float] | np.ndarray | None = None,
    rng: RngLike = None,
) -> TrainResult:
    """Train adapter + head from ``state`` on ``n`` examples; returns the new state.

    Args:
        backbone: shared model with LoRA enabled.
        state: adapter + head state to start from (left unchanged).
        contexts: (n, d) context vector of each example.
        ad_texts: (n,) ad texts.
        labels: (n,) clicks, 0 or 1.
        epochs: passes over the data (steps = max(1, round(epochs * n / batch_size)), 0 if n = 0).
        batch_size: expected (Poisson) batch size.
        lr: Adam learning rate.
        max_grad_norm: per-example clipping norm; ``None`` trains without clipping (no DP).
        noise_multiplier: Gaussian noise std / clipping norm.
        target_epsilon: if given, the noise multiplier that spends exactly this much
            (overrides ``noise_multiplier``).
        delta: delta of the reported epsilon.
        accountant: ``"rdp"`` or ``"prv"``.
        priors: (n,) the exchange's prior of each example's ad (default 0: no prior).
        rng: seed of the sampling and the noise.
    """
    contexts = np.asarray(contexts, dtype=np.float32)
    labels = np.asarray(labels)
    _check_inputs(contexts, ad_texts, labels, backbone.dim)
    n = len(labels)
    priors = np.zeros(n, np.float32) if priors is None else np.asarray(priors, np.float32)
    if priors.shape != (n,) or not np.isfinite(priors).all():
        raise AgentError(f"priors must be ({n},) finite numbers, got shape {priors.shape}")
    the_plan = plan(
        n,
        epochs=epochs,
        batch_size=batch_size,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        target_epsilon=target_epsilon,
        delta=delta,
        accountant=accountant,
    )
    gen = np.random.default_rng(rng)

    adapter = {k: v for k, v in state.items() if k not in HEAD_KEYS}
    activate(backbone, adapter, state_version(adapter))
    params = {n: p.detach().clone() for n, p in adapter_parameters(backbone).items()}
    params.update({k: torch.tensor(state[k], dtype=torch.float32) for k in HEAD_KEYS})
    for p in params.values():
        p.requires_grad_(True)
    enc = backbone.tokenize(list(ad_texts)) if n else {}
    ctx_t, y_t = torch.from_numpy(contexts), torch.from_numpy(labels.astype(np.float32))
    prior_t = torch.from_numpy(priors)

    def example_gradients(idx: np.ndarray) -> tuple[dict[str, torch.Tensor], float | None]:
        if not len(idx):
            return {}, None
        ids, mask = enc["input_ids"][idx], enc["attention_mask"][idx]
        if backbone.tokenizer.padding_side == "right":
            # columns past the batch's longest text are padding only: cutting them changes no
            # real token's output (positions count from the left) and saves their compute
            width = max(1, int(mask.sum(1).max()))
            ids, mask = ids[:, :width], mask[:, :width]
        batch = (ids, mask, ctx_t[idx], prior_t[idx], y_t[idx])
        grads, values = click_gradients(backbone, params, batch)
        return grads, float(values.mean())

    losses = private_steps(params, the_plan, n, example_gradients, lr=lr, gen=gen)
    new_state = {k: p.detach().numpy().astype(np.float32).copy() for k, p in params.items()}
    return TrainResult(new_state, the_plan, tuple(losses))
