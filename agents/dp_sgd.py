"""DP-SGD's private gradient: per-example gradients, per-example clipping, Gaussian noise.

Per-example gradients come two ways. When every trainable parameter is the weight or bias of
a ``torch.nn.Linear`` (peft's ``lora_A`` / ``lora_B`` are), :func:`linear_tape` keeps each
layer's input ``a`` (B, T, in) from forward hooks during one batched forward, one
``torch.autograd.grad`` of the summed per-example losses asks for the layers' output gradients
``g`` (B, T, out) only (no ``.grad`` accumulated, nothing differentiated below the lowest such
layer, no frozen layer's weight gradient), and ``dW_i = g_i^T a_i`` is one ``bmm`` over the
batch (as Opacus's hooks compute it; Goodfellow 2015). That is exact when example ``i``'s loss
depends on no other example's activations (a transformer in eval mode with its attention
mask). Otherwise ``torch.func`` (``vmap`` over ``grad``, :func:`per_example_gradients`) is the
generic path: any model that runs under ``functional_call``; :func:`linear_owners` decides.
With per-example gradients ``g_i`` (all parameters flattened together), clipping norm ``C``
and noise multiplier ``z``:

    g_i <- g_i * min(1, C / ||g_i||),    G = (sum_i g_i + N(0, (z C)^2 I)) / B

where ``B`` is the expected batch size (Abadi et al. 2016). ``z = 0`` and ``C = None`` give plain
mini-batch SGD through the same code.

Only the per-example gradients themselves are (B, P): the norms are one reduction per
parameter into a (B,) vector, and the clipped sum is ``min(1, C / ||g_i||)`` (B,) times each
per-example gradient tensor (a matrix-vector product), so no clipped or squared (B, P) copy
is built (as Opacus's optimizer does with ``einsum("i,i...", factors, grad_sample)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

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


def linear_owners(module: torch.nn.Module, names: Iterable[str]) -> dict[str, torch.nn.Linear]:
    """The ``torch.nn.Linear`` submodule of ``module`` owning each parameter name (a ``weight``
    or ``bias``, named relative to ``module``), or an empty dict if any name is something else:
    :func:`linear_tape` applies exactly when this is non-empty (the one place that decides).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
        >>> sorted(linear_owners(net, ["0.weight", "0.bias"]))
        ['0.bias', '0.weight']
        >>> linear_owners(net, ["0.weight", "1.weight"])
        {}
    """
    owners = {}
    for name in names:
        prefix, _, leaf = name.rpartition(".")
        try:
            owner = module.get_submodule(prefix)
        except AttributeError:
            return {}
        if leaf not in ("weight", "bias") or not isinstance(owner, torch.nn.Linear):
            return {}
        owners[name] = owner
    return owners


class LinearTape:
    """What :func:`linear_tape` recorded: each tracked layer's (input, output) per call.

    :meth:`gradients` turns one backward of a sum of per-example losses into per-example
    gradients of the tracked weights and biases.
    """

    def __init__(self, owners: dict[str, torch.nn.Linear]) -> None:
        self.owners = owners
        # the layers whose weight / bias is tracked: nothing is built for the others
        self.with_weight = {id(m) for name, m in owners.items() if name.endswith("weight")}
        self.with_bias = {id(m) for name, m in owners.items() if name.endswith("bias")}
        # (layer id, its input a (B, ..., in), its output (B, ..., out)) per call, in order
        self.calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def _record(self, layer: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.calls.append((id(layer), args[0].detach(), out))

    def gradients(self, total: torch.Tensor) -> Grads:
        """Per-example gradients ((B, out, in) weights, (B, out) biases) from ``total``, the
        0-d sum of the batch's per-example losses; B is the inputs' leading dimension.

        Exact when example ``i``'s loss depends on no other example's activations (true of a
        transformer in eval mode with its attention mask: a padded position gets a zero output
        gradient). ``autograd.grad`` asks for the layers' output gradients ``g`` only: no
        ``.grad`` is accumulated and nothing below the lowest tracked layer is differentiated.
        Then ``dW_i = g_i^T a_i`` (one ``bmm`` over the batch) and ``db_i = sum_t g_i[t]``; a
        layer called more than once adds its calls' gradients.
        """
        if not self.calls:
            raise AgentError("linear_tape recorded no call of the tracked layers in its block")
        outs = [out for _, _, out in self.calls]
        grads_out = torch.autograd.grad(total, outs, allow_unused=True, materialize_grads=True)
        weights: dict[int, torch.Tensor] = {}
        biases: dict[int, torch.Tensor] = {}
        for (layer, a, _), g in zip(self.calls, grads_out, strict=True):
            g3 = g.reshape(len(g), -1, g.shape[-1])  # (B, T, out); T = 1 for (B, out) inputs
            if layer in self.with_weight:
                w = torch.bmm(g3.transpose(1, 2), a.reshape(len(a), -1, a.shape[-1]))
                weights[layer] = w if layer not in weights else weights[layer] + w
            if layer in self.with_bias:
                b = g3.sum(1)
                biases[layer] = b if layer not in biases else biases[layer] + b
        batch = len(self.calls[0][1])
        out = {}
        for name, owner in self.owners.items():
            leaf = name.rpartition(".")[2]
            found = (weights if leaf == "weight" else biases).get(id(owner))
            if found is None:  # a tracked layer the forward never called: zero gradients
                found = torch.zeros(batch, *owner.get_parameter(leaf).shape)
            out[name] = found
        return out


@contextmanager
def linear_tape(module: torch.nn.Module, names: Iterable[str]) -> Iterator[LinearTape]:
    """Record the inputs and outputs of the ``nn.Linear`` layers owning ``names`` (parameters
    of ``module``, e.g. peft's ``lora_A`` / ``lora_B``) during one batched forward in the
    block; the hooks are removed on leaving it (a backward after the block, gradient
    checkpointing's recomputation included, records nothing).

    Raises:
        AgentError: a name that is not the weight or bias of a ``torch.nn.Linear``.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
        >>> x = torch.randn(4, 3)
        >>> with linear_tape(net, ["0.weight", "2.bias"]) as tape:
        ...     losses = net(x).squeeze(1) ** 2
        >>> grads = tape.gradients(losses.sum())
        >>> tuple(grads["0.weight"].shape), tuple(grads["2.bias"].shape)
        ((4, 2, 3), (4, 1))
    """
    names = list(names)
    owners = linear_owners(module, names)
    if not owners and names:
        bad = [n for n in names if not linear_owners(module, [n])]
        raise AgentError(
            f"linear_tape tracks weights and biases of torch.nn.Linear layers only; "
            f"{bad[0]!r} is not one (use per_example_gradients for it)"
        )
    tape = LinearTape(owners)
    layers = {id(m): m for m in owners.values()}.values()  # weight and bias share one hook
    handles = [m.register_forward_hook(tape._record) for m in layers]
    try:
        yield tape
    finally:
        for handle in handles:
            handle.remove()


def linear_per_example_gradients(
    module: torch.nn.Module, names: Iterable[str], forward: Callable[[], torch.Tensor]
) -> tuple[Grads, torch.Tensor]:
    """Per-example gradients of the Linear weights/biases ``names`` of ``module`` and the (B,)
    losses, from one batched ``forward()`` (returning the (B,) per-example losses, running
    through ``module``) and one backward of their sum; see :func:`linear_tape`.

    The same values as :func:`per_example_gradients` over the same examples, without ``vmap``.
    """
    with linear_tape(module, names) as tape:
        losses = forward()
    return tape.gradients(losses.sum()), losses.detach()


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
