"""DP-SGD's private gradient: the project's against Opacus, side by side, same results checked.

One DP-SGD gradient = per-example gradients, per-example clipping to C = 1, their sum, Gaussian
noise (z = 1), divided by the expected batch size; no optimizer step. Project: what
``agents.train`` runs each step, per-example gradients + ``agents.dp_sgd.private_gradient``;
the per-example gradients are ``agents.training.click_gradients`` on LoRA MiniLM (forward
hooks on the LoRA ``nn.Linear`` layers, one batched forward and backward) and
``agents.dp_sgd.per_example_gradients`` (``torch.func.vmap``, the generic path) on the MLP.
Peer: Opacus's ``GradSampleModule`` (per-sample gradients from
hooks, ``loss_reduction="mean"``, its standard set-up) + ``DPOptimizer.pre_step`` (clip, sum,
noise, scale). Models:

- ``mlp``: 256-256-128-10 ReLU MLP (99,978 parameters), batch 256, cross-entropy;
- ``lora-minilm``: MiniLM (all-MiniLM-L6-v2) with LoRA r = 8 on query/value (the adapter is
  what trains), batch 16 x 64 tokens, the agent's click loss (cosine relevance through the
  initial head, binary cross-entropy).

Before timing, the per-example gradients and the un-noised private gradient of both are checked
equal (max abs difference, reported). Then project and peer run in the same process,
interleaved, one thread; the ratio (project time / Opacus time, lower is better) is reported as
median and range over the repeats, with the machine load. Opacus is not a project dependency:

    pip install --no-deps --target /tmp/opacus opacus==1.6.0 opt_einsum
    rm -r /tmp/opacus/benchmarks /tmp/opacus/examples  # the wheel's own, they shadow ours
    PYTHONPATH=/tmp/opacus bash .ci/env python benchmarks/dp_sgd.py [--repeats 15] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.dp_sgd import Grads, per_example_gradients, private_gradient  # noqa: E402
from benchmarks._report import side_by_side  # noqa: E402
from benchmarks.auction_throughput import interleaved  # noqa: E402

CLIP, NOISE = 1.0, 1.0


@dataclass
class Case:
    """One model's DP-SGD problem: the trainable ``params`` (name -> tensor, shared by the
    module), the project's per-example ``gradients(params) -> {name: (B, ...)}`` of the
    batch, the batch's mean loss ``batch_loss(*batch)`` through the module for Opacus, the
    ``module`` whose trainable leaves Opacus hooks, and the ``batch`` (tensors with a leading
    dimension B)."""

    params: dict[str, torch.nn.Parameter]
    gradients: Callable[[Grads], Grads]
    batch_loss: Callable[..., torch.Tensor]
    module: torch.nn.Module
    batch: tuple[torch.Tensor, ...]


def mlp_case(batch_size: int) -> Case:
    """The 99,978-parameter MLP on random inputs and labels."""
    torch.manual_seed(0)
    sizes = (256, 256, 128, 10)
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    x, y = torch.randn(batch_size, sizes[0]), torch.randint(0, sizes[-1], (batch_size,))

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, p, (xi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])

    def batched(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(xb), yb)

    def gradients(p: Grads) -> Grads:
        return per_example_gradients(loss, p, x, y)[0]

    return Case(dict(model.named_parameters()), gradients, batched, model, (x, y))


def lora_case(batch_size: int) -> Case:
    """MiniLM + LoRA r = 8: the agent's click loss on ``batch_size`` ads of 64 tokens."""
    from agents.lora import adapter_parameters, enable_lora
    from agents.models import load_model
    from agents.scoring import initial_head, torch_logits
    from agents.training import click_gradients

    backbone = load_model("minilm", max_length=64)
    enable_lora(backbone, rank=8)
    params = adapter_parameters(backbone)
    for p in params.values():
        p.requires_grad_(True)
    head = {k: torch.from_numpy(v) for k, v in initial_head(backbone.dim).items()}
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words, 80)) for _ in range(batch_size)]  # truncated to 64
    enc = backbone.tokenize(texts)
    ctx = torch.from_numpy(backbone.embed(["summer dress and shoes"])).expand(batch_size, -1)
    y = torch.from_numpy(rng.integers(0, 2, batch_size).astype(np.float32))

    def batched(ids, mask, c, yb):
        logits = torch_logits(c, backbone.pooled(ids, mask), head)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, yb)

    batch = (enc["input_ids"], enc["attention_mask"], ctx.contiguous(), y)
    click_batch = (*batch[:3], torch.zeros(batch_size), y)  # no prior, as torch_logits' default

    def gradients(p: Grads) -> Grads:  # the head is a constant here: the adapter trains
        return click_gradients(backbone, p, click_batch, head=head)[0]

    return Case(params, gradients, batched, backbone.core, batch)


def ours(case: Case, noise: float, seed: int = 0) -> tuple[dict, dict]:
    """(per-example gradients, private gradient) of the project."""
    frozen = {k: v.detach() for k, v in case.params.items()}
    grads = case.gradients(frozen)
    out = private_gradient(
        grads,
        frozen,
        max_grad_norm=CLIP,
        noise_multiplier=noise,
        expected_batch_size=len(case.batch[0]),
        generator=torch.Generator().manual_seed(seed),
    )
    return grads, out


class Opacus:
    """Opacus's DP-SGD gradient on its own ``case`` (its module gets Opacus's hooks)."""

    def __init__(self, case: Case) -> None:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        self.case = case
        for m in case.module.modules():  # Opacus hooks only modules in training mode; the
            if any(p.requires_grad for p in m.parameters(recurse=False)):  # rest stays eval
                m.train()  # (no dropout), as on the project's side
        self.module = GradSampleModule(case.module, loss_reduction="mean")
        self.optimizer = DPOptimizer(
            torch.optim.SGD(list(case.params.values()), lr=0.0),
            noise_multiplier=NOISE,
            max_grad_norm=CLIP,
            expected_batch_size=len(case.batch[0]),
            loss_reduction="mean",
        )

    def __call__(self) -> tuple[dict, dict]:
        """(per-example gradients, private gradient), as the project's."""
        self.optimizer.zero_grad(set_to_none=True)
        self.case.batch_loss(*self.case.batch).backward()
        self.optimizer.pre_step()
        params = self.case.params.items()
        return {k: p.grad_sample for k, p in params}, {k: p.grad for k, p in params}


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over all tensors of two same-keyed dicts."""
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def compare(name: str, make: Callable[[], Case], repeats: int) -> dict:
    """Agreement (noise 0), then interleaved timing (noise 1) of one model; ``make`` builds
    two identical instances, one for each side (Opacus's hooks stay off the project's)."""
    case, peer = make(), Opacus(make())
    peer.optimizer.noise_multiplier = 0.0
    peer_grads, peer_out = peer()
    grads, out = ours(case, 0.0)
    peer.optimizer.noise_multiplier = NOISE
    timing = interleaved(lambda: ours(case, NOISE), peer, repeats)
    return {
        "model": name,
        "params": sum(p.numel() for p in case.params.values()),
        "batch": len(case.batch[0]),
        "ours_ms": 1e3 * timing["t_ours"],
        "opacus_ms": 1e3 * timing["t_peer"],
        "ratio_median": timing["ratio_median"],
        "ratio_range": f"{timing['ratio_min']:.2f}-{timing['ratio_max']:.2f}",
        "per_example_max_diff": max_diff(grads, peer_grads),
        "gradient_max_diff": max_diff(out, peer_out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats per model")
    parser.add_argument("--quick", action="store_true", help="the MLP only, 5 repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 5 if args.quick else args.repeats
    cases = {"mlp": lambda: mlp_case(256)}
    if not args.quick:
        cases["lora-minilm"] = lambda: lora_case(16)
    side_by_side(
        "dp_sgd",
        lambda: [compare(name, make, repeats) for name, make in cases.items()],
        f"one thread; {repeats} interleaved repeats; ratio = project time / Opacus time "
        "(lower is better); times best",
        lambda rows: {
            "target_ratio_le_1": all(r["ratio_median"] <= 1.0 for r in rows),
            "agree_1e-6": all(r["per_example_max_diff"] <= 1e-6 for r in rows),
        },
        repeats=repeats,
    )


if __name__ == "__main__":
    main()
