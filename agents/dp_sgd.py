"""DP-SGD's private gradient: per-example gradients, per-example clipping, Gaussian noise.

Per-example gradients come from ``torch.func`` (``vmap`` over ``grad``), so any model that
runs under ``functional_call`` works, peft's LoRA layers included. With per-example gradients
``g_i`` (all parameters flattened together), clipping norm ``C`` and noise multiplier ``z``:

    g_i <- g_i * min(1, C / ||g_i||),    G = (sum_i g_i + N(0, (z C)^2 I)) / B

where ``B`` is the expected batch size (Abadi et al. 2016). ``z = 0`` and ``C = None`` give plain
mini-batch SGD through the same code.

Only the per-example gradients themselves are (B, P): the norms are one reduction per
parameter into a (B,) vector, and the clipped sum is ``min(1, C / ||g_i||)`` (B,) times each
per-example gradient tensor (a matrix-vector product), so no clipped or squared (B, P) copy
is built (as Opacus's optimizer does with ``einsum("i,i...", factors, grad_sample)``).
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
    """(B,) L2 norm of each example's gradient over all parameters together.

    One reduction per parameter into a (B,) vector: no (B, P) temporary.
    """
    squares = [
        torch.linalg.vector_norm(g.reshape(len(g), -1), dim=1).square() for g in grads.values()
    ]
    return torch.stack(squares).sum(0).sqrt()


def clip_factors(grads: Grads, max_grad_norm: float) -> torch.Tensor:
    """(B,) factors ``min(1, max_grad_norm / ||g_i||)`` that clip each example's gradient."""
    if not max_grad_norm > 0:
        raise AgentError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    return (max_grad_norm / (per_example_norms(grads) + 1e-12)).clamp(max=1.0)


def clip_per_example(grads: Grads, max_grad_norm: float) -> Grads:
    """Each example's gradient scaled to norm at most ``max_grad_norm`` (a new (B, ...) dict;
    :func:`private_gradient` sums the clipped gradients without building it)."""
    factor = clip_factors(grads, max_grad_norm)
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
    # clip + sum fused: one (B,) @ (B, P_k) product per parameter, no clipped copy
    factors = clip_factors(grads, max_grad_norm) if max_grad_norm is not None and grads else None
    out = {}
    for name, p in params.items():
        if name not in grads:
            total = torch.zeros_like(p)
        elif factors is None:
            total = grads[name].sum(0)
        else:
            total = (factors @ grads[name].reshape(len(factors), -1)).view(p.shape)
        if noise_multiplier > 0:
            std = noise_multiplier * max_grad_norm
            total.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype), alpha=std)
        out[name] = total.div_(expected_batch_size)
    return out
