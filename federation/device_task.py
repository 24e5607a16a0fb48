"""A market device as a federated ``Task``: its agent fine-tunes the global adapter + head on its
own click log with DP-SGD (``task = "device"``).

A device keeps its private state in its own store, a folder on the device
(``<device-store>/device-<partition-id>/``): ``context.json`` (the user's events and click log,
:meth:`agents.PrivateContext.save`) and ``budget.json`` (``{"total": epsilon budget, "spent":
epsilon spent so far}``, the device's own accountant). In a deployment the user's app writes
that store; in a simulation the market writes each device's own observations there before a
round (the simulator's channel, never a Flower message). The store is found from the node's
``device-store`` node config, else the run config's.

Training is :meth:`agents.Agent.train_local` on the click log, in one of two privacy units:

- **user level** (``user_level``: the run's ``dp`` mode clips each whole update, on the node
  with Flower's ``fixedclipping_mod``, and the server noises the average; DP-FedAvg): the
  device trains without example-level noise and replies the new arrays with
  ``num-examples = 1``, nothing about its log; ``budget.json`` holds the user's epsilon as
  its accountant composed it, and a device with none left declines;
- **example level** (no ``dp`` mode): DP-SGD with ``noise_multiplier``, one click row is the
  unit; the device's budget pays the epsilon and is written back; the reply adds the rows,
  the steps and the epsilon spent (this round's and in total).

A device with no clicks or no budget left declines (``num-examples = 0``), and the round core
leaves it out.

Example:
    >>> import tempfile
    >>> from agents import PrivateContext
    >>> store = tempfile.mkdtemp()
    >>> ctx = PrivateContext()
    >>> ctx.record_impression("a1", "running shoes", 1, time=1.0)
    >>> write_device(store, 0, ctx, budget_total=10.0, budget_spent=0.0).name
    'device-0'
    >>> task = DeviceTask("tiny-encoder", store=store, rank=2, noise_multiplier=1.0)
    >>> arrays, n, metrics = task.train(task.initial_arrays(), task.load(0, 1), epochs=1,
    ...                                 lr=1e-3, rng=0)
    >>> n, metrics["steps"], 0 < metrics["epsilon"] == metrics["epsilon-spent"]
    (1, 1.0, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.context import write_json_atomic

from ._errors import FederationError
from .agent_task import LoRATask, shared_backbone

CONTEXT, BUDGET = "context.json", "budget.json"


def device_folder(store: str | Path, partition_id: int) -> Path:
    """The store folder of device ``partition_id``."""
    return Path(store) / f"device-{int(partition_id)}"


def write_device(
    store: str | Path, partition_id: int, context: Any, *, budget_total: float, budget_spent: float
) -> Path:
    """Put a device's private context and accountant in its store (atomic writes)."""
    folder = device_folder(store, partition_id)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # the user's own data: readable by the device alone
    context.save(folder / CONTEXT)
    write_json_atomic(folder / BUDGET, {"total": float(budget_total), "spent": float(budget_spent)})
    return folder


@dataclass(frozen=True)
class DeviceData:
    """Where one device's store is."""

    folder: Path
    partition_id: int


class DeviceTask(LoRATask):
    """Train one market device's agent from the global adapter + head (see module doc).

    Args:
        model: backbone name for ``agents.load_model`` (``"minilm"``, ``"tiny-encoder"``).
        store: the devices' store root (``device-store``).
        rank: LoRA rank; max_length: tokens kept per text (both as the market's agents).
        batch_size: expected DP-SGD (Poisson) batch size.
        clipping_norm: per-example clipping norm of DP-SGD (> 0).
        noise_multiplier: DP-SGD noise std / clipping norm (0: no DP, epsilon inf).
        delta: delta of the epsilon the device reports.
        seed: LoRA-initialisation seed of the backbone.
        user_level: the update is clipped and noised as a whole (see the module doc).
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        store: str | Path = "",
        rank: int = 8,
        max_length: int = 32,
        batch_size: int = 16,
        clipping_norm: float = 1.0,
        noise_multiplier: float = 1.0,
        delta: float = 1e-5,
        seed: int = 0,
        user_level: bool = False,
    ) -> None:
        if not clipping_norm > 0 or noise_multiplier < 0 or rank < 1 or batch_size < 1:
            raise FederationError(
                "task = 'device' needs dp-sgd-clipping-norm > 0, dp-sgd-noise-multiplier >= 0, "
                f"lora-rank and batch-size >= 1; got {clipping_norm}, {noise_multiplier}, "
                f"{rank}, {batch_size}"
            )
        self.model, self.store, self.rank, self.max_length = model, str(store), rank, max_length
        self.batch_size, self.clipping_norm = batch_size, clipping_norm
        self.noise_multiplier, self.delta, self.seed = noise_multiplier, delta, seed
        self.user_level = user_level

    @property
    def backbone(self) -> Any:
        return shared_backbone(self.model, self.rank, self.seed, self.max_length)

    def load(self, partition_id: int, num_partitions: int, store: str = "") -> DeviceData:
        """The device's store (``store``: the node's own, else the run config's)."""
        root = store or self.store
        if not root:
            raise FederationError(
                "task = 'device' needs a device store: set device-store in the node config "
                "or the run config"
            )
        if not 0 <= partition_id < num_partitions:
            raise FederationError(
                f"partition-id must be in 0..{num_partitions - 1}, got {partition_id}"
            )
        return DeviceData(device_folder(root, partition_id), int(partition_id))

    def flip_labels(self, data: DeviceData) -> DeviceData:
        raise FederationError("task = 'device' trains on the user's real clicks: no label flip")

    def num_eval(self, data: DeviceData) -> int:
        return 0

    def evaluate(self, arrays: dict[str, np.ndarray], data: DeviceData) -> dict[str, float]:
        """Devices do not evaluate: the market measures quality from the simulator's side."""
        return {}

    def train(
        self,
        arrays: dict[str, np.ndarray],
        data: DeviceData,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
        """Train on the device's click log (``Agent.train_local``); declines with 0 rows."""
        from agents import Agent, BudgetExhaustedError, PrivateContext

        if proximal_mu:
            raise FederationError("task = 'device' has no proximal term: proximal-mu must be 0")
        context_path, budget_path = data.folder / CONTEXT, data.folder / BUDGET
        if not context_path.is_file() or not budget_path.is_file():
            return arrays, 0, {"declined": 1.0}  # a device the market never served
        budget = json.loads(budget_path.read_text())
        total, spent = float(budget["total"]), float(budget["spent"])
        if not (total > 0 and spent >= 0):  # inf is a real answer: a run without noise
            raise FederationError(f"{budget_path}: total must be > 0 and spent >= 0")
        context = PrivateContext.load(context_path)
        # A device embeds only its own texts: one process may serve several simulated
        # devices, and what another left in the cache would change this one's batches (and
        # so the last bits of its embeddings).
        self.backbone.clear_cache()
        if not context.clicks or (self.user_level and spent >= total):
            return arrays, 0, {"declined": 1.0}
        if self.user_level:  # the user's epsilon is the run's round mechanism, not DP-SGD's
            agent = Agent(self.backbone, context, state=arrays)
            agent.train_local(
                epochs=float(epochs),
                batch_size=self.batch_size,
                lr=lr,
                max_grad_norm=self.clipping_norm,
                noise_multiplier=0.0,
                rng=rng,
            )
            return agent.state(), 1, {}
        agent = Agent(self.backbone, context, state=arrays, epsilon_budget=total)
        agent.budget.spent = spent
        try:
            update = agent.train_local(
                epochs=float(epochs),
                batch_size=self.batch_size,
                lr=lr,
                max_grad_norm=self.clipping_norm,
                noise_multiplier=self.noise_multiplier,
                rng=rng,
            )
        except BudgetExhaustedError:
            return arrays, 0, {"declined": 1.0, "epsilon-spent": spent}
        write_json_atomic(budget_path, {"total": total, "spent": agent.budget.spent})
        metrics = {
            "steps": float(update.steps),
            "epsilon": float(update.epsilon),
            "epsilon-spent": float(agent.budget.spent),
        }
        return agent.state(), update.num_examples, metrics
