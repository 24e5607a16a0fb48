"""FlowerTune-style federated fine-tuning of a causal LM's LoRA adapter (``task = "instruct"``).

The global arrays are the LoRA adapter of a causal backbone (``model``: ``"smollm2"``, or
``"tiny-causal"`` in tests; fp32 ``dict[str, ndarray]`` from ``agents.enable_lora``, on
``lora-targets`` = q_proj, v_proj): nothing else goes on the wire. Every MovieLens-100k user
is a device (dealt to clients by ``agent_task.partition_users``, as the agent task deals them).
A device's examples are built from its own log (``agents.instruct``): the instruction names
the newest ``HISTORY`` titles the user viewed before a target, the response is the target's
title; the targets are the user's newest ``positives-per-user`` history positives (the
held-out positives stay for evaluation). Sequences are at most ``max-length`` tokens, right
padded, with the loss on the response tokens only; training checkpoints activations.

Privacy, in one of two units (as ``device_task``):

- **user level** (the run's ``dp`` mode is set): the device trains without example-level noise
  (examples clipped at ``dp-sgd-clipping-norm`` when > 0) and replies ``num-examples = 1``; the
  node clips the whole update with Flower's ``fixedclipping_mod`` (``dp = "client-fixed"``) or
  the server does (``central-*``), and the server noises the average (DP-FedAvg);
- **example level** (``dp = "none"``): DP-SGD (``agents.instruct.train_causal``) with
  ``dp-sgd-clipping-norm`` / ``dp-sgd-noise-multiplier``, one example the unit; the reply
  carries the examples, the steps and the round's epsilon.

``evaluate`` reports the mean response-token loss (nats/token) on prompts from the user's whole
history with each held-out positive as response, and NDCG@10 / Precision@10 of ranking
candidates by ``Backbone.loglik`` (mean token log-probability of the title after the prompt):
the user's held-out positives plus ``NEGATIVES`` unrated movies drawn per user from the seed.

Each round the server saves the global adapter in Hugging Face PEFT form
(``<checkpoint-dir>/adapter-round-<r>/``, :meth:`InstructTask.save_round`).

Example:
    >>> task = InstructTask("tiny-causal", rank=2, users_per_client=1, max_length=64)
    >>> data = task.load(0, 400)
    >>> arrays, n, metrics = task.train(task.initial_arrays(), data, epochs=1, lr=1e-3, rng=0)
    >>> n == task.positives, sorted(metrics)
    (True, ['lr', 'steps', 'train_loss'])
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import FederationError
from .agent_task import AgentData, movielens_world, partition_users

HISTORY = 5  # titles named in an instruction: 5 SmolLM2 titles fit 128 tokens with the response
NEGATIVES = 50  # unrated movies ranked with a user's held-out positives at evaluation
K = 10
TARGETS = ("q_proj", "v_proj")  # the default: what agents.enable_lora picks on Llama models


class InstructTask:
    """Federated instruction tuning of a causal LM's LoRA adapter (see module doc).

    Args:
        model: causal backbone name for ``agents.load_model`` (``"smollm2"``, ``"tiny-causal"``).
        rank: LoRA rank (``lora-rank``).
        targets: LoRA target modules (``lora-targets``, comma-separated in the run config).
        max_length: most tokens per example (``max-length``, 16..512).
        users_per_client: keep at most this many users of a partition (0: all).
        positives: training targets per user (``positives-per-user``).
        batch_size: expected DP-SGD (Poisson) batch size.
        clipping_norm: per-example clipping norm (``dp-sgd-clipping-norm``; 0: none, no DP).
        noise_multiplier: DP-SGD noise std / clipping norm (needs a clipping norm).
        delta: delta of the reported epsilon.
        seed: partition, LoRA-initialisation and evaluation-candidate seed.
        user_level: the run's ``dp`` mode clips and noises each whole update (module doc).
        threads: torch threads of this process (1: one Ray actor per core).
        checkpointing: gradient checkpointing (less activation memory, about twice the CPU
            time of a SmolLM2 step at 76 tokens: see federation/README.md).
    """

    def __init__(
        self,
        model: str = "smollm2",
        *,
        rank: int = 8,
        targets: tuple[str, ...] = TARGETS,
        max_length: int = 128,
        users_per_client: int = 0,
        positives: int = 4,
        batch_size: int = 4,
        clipping_norm: float = 0.0,
        noise_multiplier: float = 0.0,
        delta: float = 1e-5,
        seed: int = 0,
        user_level: bool = False,
        threads: int = 1,
        checkpointing: bool = True,
    ) -> None:
        checks = {
            "lora-rank": (rank, rank >= 1),
            "max-length": (max_length, 16 <= max_length <= 512),
            "users-per-client": (users_per_client, users_per_client >= 0),
            "positives-per-user": (positives, positives >= 1),
            "batch-size": (batch_size, batch_size >= 1),
            "dp-sgd-clipping-norm": (clipping_norm, clipping_norm >= 0),
            "dp-sgd-noise-multiplier": (noise_multiplier, noise_multiplier >= 0),
        }
        allowed = ">= 1, max-length in 16..512, users-per-client and the dp-sgd knobs >= 0"
        for key, (value, ok) in checks.items():
            if not ok:
                raise FederationError(f"task = 'instruct': {key} = {value!r}; allowed: {allowed}")
        if noise_multiplier > 0 and clipping_norm == 0:
            raise FederationError(
                "task = 'instruct': dp-sgd-noise-multiplier > 0 needs dp-sgd-clipping-norm > 0"
            )
        if not targets or not all(
            t and t.replace("_", "").replace(".", "").isalnum() for t in targets
        ):
            raise FederationError(
                f"task = 'instruct': lora-targets = {','.join(targets)!r}; allowed: one or more "
                f"layer names of the model body, comma-separated (default {','.join(TARGETS)}; "
                "agents.enable_lora names the layers that exist when one is not found)"
            )
        self.model, self.rank, self.targets, self.max_length = model, rank, targets, max_length
        self.users_per_client, self.positives, self.batch_size = (
            users_per_client,
            positives,
            batch_size,
        )
        self.clipping_norm, self.noise_multiplier, self.delta = (
            clipping_norm,
            noise_multiplier,
            delta,
        )
        self.seed, self.user_level, self.threads = seed, user_level, threads
        self.checkpointing = checkpointing

    @classmethod
    def from_settings(cls, cfg: dict[str, Any]) -> InstructTask:
        """The task a checked run config (``federation.settings``) describes."""
        return cls(
            str(cfg["model"]),
            rank=int(cfg["lora-rank"]),
            targets=tuple(t.strip() for t in str(cfg["lora-targets"]).split(",")),
            max_length=int(cfg["max-length"]),
            users_per_client=int(cfg["users-per-client"]),
            positives=int(cfg["positives-per-user"]),
            batch_size=int(cfg["batch-size"]),
            clipping_norm=float(cfg["dp-sgd-clipping-norm"]),
            noise_multiplier=float(cfg["dp-sgd-noise-multiplier"]),
            delta=float(cfg["dp-delta"]),
            seed=int(cfg["seed"]),
            user_level=cfg["dp"] != "none",  # the run's dp mode clips and noises each update
        )

    @cached_property
    def backbone(self) -> Any:
        """This task's causal backbone, LoRA on, activations checkpointed unless turned off
        (loaded once)."""
        import torch

        from agents import enable_lora, load_model
        from agents.instruct import enable_checkpointing

        torch.set_num_threads(self.threads)
        bb = load_model(self.model, max_length=self.max_length)
        if bb.kind != "causal":
            raise FederationError(
                f"task = 'instruct' needs a causal LM (smollm2, tiny-causal); model = "
                f"{self.model!r} is an encoder"
            )
        enable_lora(bb, rank=self.rank, seed=self.seed, target_modules=list(self.targets))
        if self.checkpointing:
            enable_checkpointing(bb)
        return bb

    def initial_arrays(self) -> dict[str, np.ndarray]:
        """The fresh adapter (peft's: B = 0, so the base model's outputs)."""
        from agents.lora import initial_adapter

        return initial_adapter(self.backbone)

    def full_model_bytes(self) -> int:
        """Bytes of sending every fp32 base weight instead of the adapter."""
        return int(
            sum(
                p.numel() * 4 for n, p in self.backbone.model.named_parameters() if "lora_" not in n
            )
        )

    def load(self, partition_id: int, num_partitions: int) -> AgentData:
        if not 0 <= partition_id < num_partitions:
            raise FederationError(
                f"partition-id must be in 0..{num_partitions - 1}, got {partition_id}"
            )
        world = movielens_world()
        usable = np.array(
            sorted(u for u, s in world.users.items() if len(s.history) > self.positives)
        )
        part = partition_users(usable, num_partitions, self.seed)[partition_id]
        if self.users_per_client:
            part = part[: self.users_per_client]
        return AgentData(tuple(int(u) for u in part))

    def flip_labels(self, data: AgentData) -> AgentData:
        """Label-flip poisoning: responses become unrated movies instead of liked ones."""
        return AgentData(data.users, flipped=not data.flipped)

    def num_eval(self, data: AgentData) -> int:
        return len(data.users)

    def _prompt(self, movie_ids: np.ndarray) -> str:
        from agents.instruct import instruction, movie_title

        world = movielens_world()
        return instruction([movie_title(world.text[int(m)]) for m in movie_ids[-HISTORY:]])

    def _unrated(self, uid: int) -> np.ndarray:
        world = movielens_world()
        split = world.users[uid]
        return np.setdiff1d(world.item_ids, [*split.seen, *split.test])

    def eval_candidates(self, uid: int) -> np.ndarray:
        """The movie ids ranked for user ``uid`` at evaluation: its held-out positives (sorted),
        then ``NEGATIVES`` unrated movies drawn from the seed (the same every round)."""
        split = movielens_world().users[uid]
        negatives = np.random.default_rng([self.seed, 3, uid]).choice(
            self._unrated(uid), size=NEGATIVES, replace=False
        )
        return np.concatenate([np.array(sorted(split.test)), negatives])

    def examples(self, data: AgentData, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """(prompts, responses) of the client's users: each target after the titles before it."""
        from agents.instruct import movie_title

        world = movielens_world()
        prompts, responses = [], []
        for uid in data.users:
            history = world.users[uid].history[:, 0]
            targets = history[-self.positives :]
            if data.flipped:
                targets = rng.choice(self._unrated(uid), size=len(targets), replace=False)
            prompts += [self._prompt(history[: -self.positives])] * len(targets)
            responses += [" " + movie_title(world.text[int(m)]) for m in targets]
        return prompts, responses

    def train(
        self,
        arrays: dict[str, np.ndarray],
        data: AgentData,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
        """DP-SGD on the client's examples (module doc: user- or example-level); metrics
        ``train_loss`` (nats/token), ``steps``, ``lr`` and, under example-level noise,
        ``epsilon``."""
        from agents.instruct import encode, train_causal

        if proximal_mu:
            raise FederationError("task = 'instruct' has no proximal term: proximal-mu must be 0")
        gen = np.random.default_rng(rng)
        prompts, responses = self.examples(data, gen)
        if not prompts:
            return arrays, 0, {"declined": 1.0}
        batch = encode(self.backbone.tokenizer, prompts, responses, max_length=self.max_length)
        fit = train_causal(
            self.backbone,
            arrays,
            batch,
            epochs=float(epochs),
            batch_size=self.batch_size,
            lr=lr,
            max_grad_norm=self.clipping_norm or None,
            noise_multiplier=0.0 if self.user_level else self.noise_multiplier,
            delta=self.delta,
            rng=gen,
        )
        metrics = {
            "train_loss": float(np.mean(fit.losses)) if fit.losses else 0.0,
            "steps": float(fit.plan.steps),
            "lr": float(lr),  # the round's rate (lr-schedule): public, from the server
        }
        if self.user_level:
            return fit.state, 1, metrics  # the user is the unit: one vote in the average
        if self.clipping_norm and self.noise_multiplier:
            metrics["epsilon"] = float(fit.plan.epsilon)
        return fit.state, len(batch), metrics

    def evaluate(self, arrays: dict[str, np.ndarray], data: AgentData) -> dict[str, float]:
        """Mean response loss (nats/token) and NDCG@10 / Precision@10 of log-likelihood
        ranking over the users (module doc)."""
        from agents.datasets import precision_ndcg_at_k
        from agents.instruct import encode, mean_response_loss, movie_title
        from agents.lora import activate, state_version

        world, bb = movielens_world(), self.backbone
        prompts, responses, rows = [], [], []
        for uid in data.users:
            split = world.users[uid]
            prompt = self._prompt(split.history[:, 0])
            test, candidates = np.array(sorted(split.test)), self.eval_candidates(uid)
            titles = [" " + movie_title(world.text[int(m)]) for m in candidates]
            prompts += [prompt] * len(test)
            responses += titles[: len(test)]
            activate(bb, arrays, state_version(arrays))
            scores = bb.loglik(prompt, titles)
            rows.append(precision_ndcg_at_k(scores, candidates, split.test, (), k=K))
        if not rows:
            return {"response_loss": 0.0, "ndcg@10": 0.0, "precision@10": 0.0}
        batch = encode(bb.tokenizer, prompts, responses, max_length=self.max_length)
        precision, ndcg = np.mean(rows, axis=0)
        return {
            "response_loss": mean_response_loss(bb, arrays, batch),
            "ndcg@10": float(ndcg),
            "precision@10": float(precision),
        }

    def save_round(self, arrays: dict[str, np.ndarray], server_round: int, folder: Path) -> Path:
        """Save the round's global adapter as ``folder/adapter-round-<r>`` in PEFT form."""
        from agents.instruct import save_peft

        return save_peft(self.backbone, arrays, Path(folder) / f"adapter-round-{server_round}")
