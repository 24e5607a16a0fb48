"""The federated ServerApp: a strategy chosen by run config, checkpoints, resume, accounting.

Each round the global arrays are checkpointed (``checkpoint-dir``); with ``resume = true`` a
run continues from the last checkpoint instead of round 0. The per-round client metrics
(train loss, bytes up and down, NDCG@10, Precision@10) and the totals (bytes of the global
arrays vs the full model) are written to ``output`` (JSON). ``secagg = true`` runs the rounds
through Flower's SecAgg+ workflow (``secagg.run_secagg``) in this same app.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from ._errors import FederationError
from .accounting import array_bytes
from .async_buffer import run_async
from .rounds import evaluate_round, train_round, wait_for_nodes
from .secagg import run_secagg
from .selection import EnergyAwareSelection
from .settings import round_config, settings
from .strategies import make_strategy
from .task import make_task
from .user_privacy import RoundAccountant


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(folder: Path, server_round: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``round-<r>.npz`` atomically and point ``latest.json`` at it."""
    path = folder / f"round-{server_round:05d}.npz"

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    _atomic(path, write_npz)
    _atomic(
        folder / "latest.json",
        lambda tmp: Path(tmp).write_text(json.dumps({"round": server_round, "file": path.name})),
    )
    return path


def load_checkpoint(folder: Path) -> tuple[int, dict[str, np.ndarray]] | None:
    """(round, arrays) of the latest checkpoint, or None."""
    latest = folder / "latest.json"
    if not latest.is_file():
        return None
    info = json.loads(latest.read_text())
    with np.load(folder / info["file"]) as data:
        return int(info["round"]), {k: data[k] for k in data.files}


def run_server(grid: Grid, cfg: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
    """Run (or resume) the configured rounds; returns the summary it also writes.

    Every round goes through the round core (:func:`federation.rounds.train_round`): replies
    are validated before the strategy aggregates them, and their metrics are aggregated by
    meaning. The global arrays are evaluated by the nodes (federated evaluation) before the
    first round (round 0) and after every round, and by the server on its own held-out
    queries with ``server-eval = true``. ``num-nodes = 0`` takes the federation's size.
    ``context`` (the ServerApp's) is needed only by ``secagg = true`` (the legacy workflow).
    """
    if cfg["method"] == "lolafl":
        from .lolafl.config import RunConfig
        from .lolafl.server_app import run_lolafl

        return _finish(cfg, run_lolafl(grid, RunConfig.from_mapping(dict(cfg))))
    task = make_task(cfg)
    arrays, done = task.initial_arrays(), 0
    folder = Path(cfg["checkpoint-dir"]) if cfg["checkpoint-dir"] else None
    if folder is not None and cfg["resume"]:
        found = load_checkpoint(folder)
        if found is not None:
            done, arrays = found
    total = int(cfg["num-server-rounds"])
    want = int(cfg["num-nodes"]) or None
    num_nodes = len(wait_for_nodes(grid, want, float(cfg["node-timeout"])))
    cfg = {**cfg, "num-nodes": num_nodes}
    if cfg["mode"] == "async":
        return _run_async_server(grid, cfg, arrays, folder)
    if cfg["secagg"]:
        return _run_secagg_server(grid, context, cfg, arrays, done, folder, task)
    strategy = make_strategy(
        cfg["strategy"],
        num_nodes=num_nodes,
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=float(cfg["fraction-evaluate"]),
        num_malicious=int(cfg["num-malicious"]),
        dp=cfg["dp"],
        noise_multiplier=float(cfg["noise-multiplier"]),
        clipping_norm=float(cfg["clipping-norm"]),
        **({"proximal_mu": float(cfg["proximal-mu"])} if cfg["strategy"] == "fedprox" else {}),
    )
    if int(cfg["clients-per-round"]) > 0:
        strategy = EnergyAwareSelection(
            strategy,
            int(cfg["clients-per-round"]),
            fairness_floor=float(cfg["fairness-floor"]),
            seed=int(cfg["seed"]),
        )

    privacy = RoundAccountant(num_nodes, cfg)

    def checkpoint(r: int, _start: Any, _updates: Any, new: dict[str, np.ndarray]) -> dict:
        if folder is not None:
            save_checkpoint(folder, r, new)
            # tasks with a Hugging Face form (instruct: a PEFT adapter folder) save it too
            save_round = getattr(task, "save_round", None)
            if save_round is not None:
                save_round(new, r, folder)
        return {}

    train: dict[str, dict[str, float]] = {}
    evaluate: dict[str, dict[str, float]] = {}
    server: dict[str, dict[str, float]] = {}
    rejected: dict[str, dict[str, str]] = {}
    seconds: list[float] = []

    def evaluation(r: int) -> None:
        evaluate[str(r)] = evaluate_round(grid, strategy, arrays, r, cfg)
        if cfg["server-eval"]:
            server[str(r)] = task.evaluate(arrays, task.load(0, num_nodes))

    evaluation(done)
    for r in range(done + 1, total + 1):
        start = time.monotonic()
        # the round's config: its learning rate under lr-schedule = "cosine" (settings)
        rcfg = round_config(cfg, r)
        result = train_round(grid, strategy, arrays, r, rcfg, hooks=[privacy.hook, checkpoint])
        seconds.append(time.monotonic() - start)
        arrays = result.arrays
        train[str(r)] = result.metrics
        if result.rejected:
            rejected[str(r)] = {str(n): why for n, why in result.rejected.items()}
        evaluation(r)
    return _finish(
        cfg,
        {
            "rounds_done": total,
            "resumed_from": done,
            "num_nodes": num_nodes,
            "model_bytes": array_bytes(arrays),
            "full_model_bytes": task.full_model_bytes(),
            "round_seconds": seconds,  # each round's training, replies and aggregation
            "epsilon_per_round": privacy.per_round,  # per user, the largest so far
            "privacy": privacy.summary(),
            "train": train,
            "evaluate": evaluate,
            "server_evaluate": server,
            "rejected": rejected,
        },
    )


def _finish(cfg: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary`` to ``output`` (atomically) when one is configured; return it."""
    if cfg["output"]:
        _atomic(
            Path(cfg["output"]),
            lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, sort_keys=True)),
        )
    return summary


def _run_secagg_server(
    grid: Grid,
    context: Context | None,
    cfg: dict[str, Any],
    arrays: dict[str, np.ndarray],
    done: int,
    folder: Path | None,
    task: Any,
) -> dict[str, Any]:
    """FedAvg rounds through SecAgg+ (``secagg = true``), checkpointed like the others."""
    if context is None:
        raise FederationError("secagg = true needs the ServerApp's Context (legacy workflow)")
    total = int(cfg["num-server-rounds"])

    def checkpoint(server_round: int, new: dict[str, np.ndarray]) -> None:
        if folder is not None:
            save_checkpoint(folder, done + server_round, new)

    train, evaluate = {}, {}
    if total > done:
        arrays, train, evaluate = run_secagg(grid, context, cfg, arrays, total - done, checkpoint)
    return _finish(
        cfg,
        {
            "secagg": True,
            "rounds_done": total,
            "resumed_from": done,
            "model_bytes": array_bytes(arrays),
            "full_model_bytes": task.full_model_bytes(),
            "train": {str(r + done): m for r, m in train.items()},
            "evaluate": {str(r + done): m for r, m in evaluate.items()},
        },
    )


def _run_async_server(
    grid: Grid, cfg: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path | None
) -> dict[str, Any]:
    """Buffered asynchronous aggregation (``mode = "async"``); see ``async_buffer``."""
    concurrency = int(cfg["concurrency"]) or int(cfg["num-nodes"])
    out = run_async(grid, {**cfg, "concurrency": concurrency}, arrays)
    final = {k: v.astype(np.float32) for k, v in out["arrays"].items()}
    if folder is not None:
        save_checkpoint(folder, out["version"], final)
    return _finish(
        cfg,
        {
            "mode": "async",
            "versions": out["version"],
            "staleness": out["staleness"],
            "mean_staleness": float(np.mean(out["staleness"])) if out["staleness"] else 0.0,
            "rejected": out["rejected"],
            "model_bytes": array_bytes(final),
            "final_arrays": {k: v.tolist() for k, v in final.items()},
        },
    )


def make_server_app(**overrides: Any) -> ServerApp:
    """A ServerApp with the run config plus ``overrides`` (for ``run_simulation`` in tests)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, settings({**dict(context.run_config), **overrides}), context)

    return server


app = make_server_app()
