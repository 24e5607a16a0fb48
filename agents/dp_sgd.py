"""DP-SGD's private gradient: per-example gradients, per-example clipping, Gaussian noise.

Per-example gradients come from ``torch.func`` (``vmap`` over ``grad``), so any model that
runs under ``functional_call`` works, peft's LoRA layers included. With per-example gradients
``g_i`` (all parameters flattened together), clipping norm ``C`` and noise multiplier ``z``:

    g_i <- g_i * min(1, C / ||g_i||),    G = (sum_i g_i + N(0, (z C)^2 I)) / B

where ``B`` is the expected batch size (Abadi et al. 2016). ``z = 0`` and ``C = None`` give plain
mini-batch SGD through the same code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._errors import AgentError

Grads = dict[str, torch.Tensor]


def per_example_gradients(
    loss: Callable[..., torch.Tensor], params: Grads, *batch: torch.Tensor
) -> tuple[Grads, torch.Tensor]:
    """Gradients and values of ``loss(params, *example)`` for each example of ``batch``.

    ``batch`` tensors share a leading dimension B. Returns a dict like ``params`` whose
    tensors have an extra leading dimension B, and the (B,) losses.
    """
    in_dims = (None, *(0 for _ in batch))
    return torch.func.vmap(torch.func.grad_and_value(loss), in_dims=in_dims)(params, *batch)


def per_example_norms(grads: Grads) -> torch.Tensor:
    """(B,) L2 norm of each example's gradient over all parameters together."""
    squares = [g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values()]
    return torch.stack(squares).sum(0).sqrt()


def clip_per_example(grads: Grads, max_grad_norm: float) -> Grads:
    """Scale each example's gradient to norm at most ``max_grad_norm``."""
    if not max_grad_norm > 0:
        raise AgentError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    factor = (max_grad_norm / (per_example_norms(grads) + 1e-12)).clamp(max=1.0)
    return {k: g * factor.reshape(-1, *([1] * (g.dim() - 1))) for k, g in grads.items()}


def private_gradient(
    grads: Grads,
    params: Grads,
    *,
    max_grad_norm: float | None,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
) -> Grads:
    """DP-SGD's gradient estimate from per-example ``grads`` (possibly an empty batch).

    ``params`` gives the shapes when the batch is empty. Noise needs clipping: a positive
    ``noise_multiplier`` with ``max_grad_norm=None`` is an error (the noise would have no scale).
    """
    if noise_multiplier < 0:
        raise AgentError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if noise_multiplier > 0 and max_grad_norm is None:
        raise AgentError("noise_multiplier > 0 needs a max_grad_norm (the noise scale)")
    if max_grad_norm is not None and grads:
        grads = clip_per_example(grads, max_grad_norm)
    out = {}
    for name, p in params.items():
        total = grads[name].sum(0) if name in grads else torch.zeros_like(p)
        if noise_multiplier > 0:
            std = noise_multiplier * max_grad_norm
            total = total + std * torch.randn(p.shape, generator=generator, dtype=p.dtype)
        out[name] = total / expected_batch_size
    return out
