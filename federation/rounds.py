"""The one federated-round core: send, validate every reply, aggregate, then run the hooks.

Every federated path of the project runs its rounds here: the federated ServerApp
(``server_app.run_server``), the agent economy (``economy``), and the benchmarks. A round is

1. the train messages: the configured strategy's ``configure_train`` (it samples the nodes), or,
   when the caller chose the nodes itself (``nodes=``), one message per chosen node with the
   same content (``arrays`` + ``config`` with ``server-round``);
2. ``grid.send_and_receive``;
3. validation of every reply (:func:`check_reply`): a reply with an error, a missing or
   misshapen array, a NaN/inf value or a bad ``num-examples`` is rejected with its reason, and
   never reaches the aggregate; a reply with ``num-examples = 0`` is a device that declined
   (nothing to train on, budget spent);
4. aggregation by the strategy's own ``aggregate_train`` (FedAvg, robust rules, DP wrappers;
   a DP wrapper's noise is sized for the replies actually averaged, not the number sampled);
5. the hooks, in order: each sees the round's global arrays before and after and the accepted
   updates (valuation and payment, privacy accounting, checkpoints) and returns metrics.

Train metrics are aggregated by meaning (:func:`aggregate_metrics`): privacy losses by their
maximum, counts by their sum, the rest as a mean weighted by examples.

Example (inside a ServerApp's ``main``)::

    strategy = make_strategy("fedavg", num_nodes=10)
    for r in range(1, 4):
        result = train_round(grid, strategy, arrays, r, {"lr": 0.1}, hooks=[pay])
        arrays = result.arrays
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid

from ._errors import FederationError

Arrays = dict[str, np.ndarray]
WEIGHT_KEY = "num-examples"
ARRAY_KEY = "arrays"
# What a reply's metrics mean, by name: privacy losses (any key naming epsilon) are reported
# at their worst case (max), counts add up; anything else is a per-example mean.
PRIVACY_WORD = "epsilon"
SUM_KEYS = frozenset({"steps", "declined", "bytes-up", "bytes-down", "clicks", "rows"})


@dataclass(frozen=True)
class ClientUpdate:
    """One accepted reply: the node, its new arrays (fp32), its weight and its metrics."""

    node_id: int
    arrays: Arrays
    num_examples: int
    metrics: dict[str, float]

    def delta(self, start: Mapping[str, np.ndarray]) -> Arrays:
        """``arrays - start``: what this node's training changed."""
        return {k: self.arrays[k] - start[k] for k in start}


class RoundHook(Protocol):
    """Called after aggregation; returns metrics of its own (added to the round's)."""

    def __call__(
        self, server_round: int, start: Arrays, updates: Sequence[ClientUpdate], new: Arrays
    ) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class RoundResult:
    """What one round produced.

    Attributes:
        server_round: the round number (1-based).
        arrays: the new global arrays (the old ones when nothing valid arrived).
        updates: accepted, non-declined replies, in the chosen nodes' order (else by node id).
        declined: nodes that replied ``num-examples = 0``.
        rejected: node id -> why its reply was refused.
        metrics: train metrics aggregated by meaning, plus every hook's metrics.
    """

    server_round: int
    arrays: Arrays
    updates: list[ClientUpdate]
    declined: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of fp32 copies (ArrayRecord refuses bf16; fp32 is what agents hold)."""
    return ArrayRecord({k: Array(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()})


def from_record(record: ArrayRecord) -> Arrays:
    """The arrays of a record as fp32 numpy arrays."""
    return {k: np.asarray(a.numpy(), dtype=np.float32) for k, a in record.items()}


def _finite_metrics(content: RecordDict) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for record in content.metric_records.values():
        for key, value in record.items():
            if isinstance(value, list):
                continue
            v = float(value)
            if math.isnan(v) or (math.isinf(v) and PRIVACY_WORD not in key):
                raise FederationError(f"metric {key!r} is {v}: metrics must be finite numbers")
            metrics[key] = v
    return metrics


def check_reply(msg: Message, start: Mapping[str, np.ndarray]) -> ClientUpdate:
    """Validate one train reply against the global arrays it answered.

    Raises:
        FederationError: naming what is wrong (an error reply, a missing/extra/misshapen array,
            a NaN or inf, a missing, negative or non-finite ``num-examples``).
    """
    if not msg.has_content():
        err = msg.error
        raise FederationError(f"the node replied with an error: {err.reason if err else '?'}")
    records = msg.content.array_records
    if ARRAY_KEY not in records:
        raise FederationError(f"the reply carries no {ARRAY_KEY!r} ArrayRecord: {list(records)}")
    record = records[ARRAY_KEY]
    if set(record) != set(start):
        missing, extra = sorted(set(start) - set(record)), sorted(set(record) - set(start))
        raise FederationError(f"the reply's arrays differ: missing {missing}, extra {extra}")
    arrays = from_record(record)
    for key, ref in start.items():
        if arrays[key].shape != np.shape(ref):
            raise FederationError(
                f"array {key!r} has shape {arrays[key].shape}, the global one {np.shape(ref)}"
            )
        if not np.isfinite(arrays[key]).all():
            raise FederationError(f"array {key!r} holds NaN or inf")
    metrics = _finite_metrics(msg.content)
    if WEIGHT_KEY not in metrics:
        raise FederationError(f"the reply reports no {WEIGHT_KEY!r}")
    n = metrics[WEIGHT_KEY]
    if not (math.isfinite(n) and n >= 0 and n == int(n)):
        raise FederationError(f"{WEIGHT_KEY} must be a whole number >= 0, got {n}")
    return ClientUpdate(int(msg.metadata.src_node_id), arrays, int(n), metrics)


def aggregate_metrics(records: list[RecordDict], weighting_metric_name: str) -> MetricRecord:
    """Replies' metrics by meaning: keys naming ``epsilon`` max, counts (``SUM_KEYS``, the
    weight) sum, the rest weighted by ``weighting_metric_name`` (Flower's aggr-fn signature).

    Example:
        >>> r = [RecordDict({"m": MetricRecord({"num-examples": 1, "epsilon": 2.0, "loss": 1.0,
        ...      "steps": 3})}), RecordDict({"m": MetricRecord({"num-examples": 3,
        ...      "epsilon": 5.0, "loss": 3.0, "steps": 1})})]
        >>> dict(aggregate_metrics(r, "num-examples"))
        {'num-examples': 4.0, 'epsilon': 5.0, 'loss': 2.5, 'steps': 4.0}
    """
    rows = [
        {k: float(v) for rec in r.metric_records.values() for k, v in rec.items()} for r in records
    ]
    out = MetricRecord()
    for key in dict.fromkeys(k for row in rows for k in row):
        values = np.array([row[key] for row in rows if key in row])
        if PRIVACY_WORD in key:
            out[key] = float(values.max())
        elif key in SUM_KEYS or key == weighting_metric_name:
            out[key] = float(values.sum())
        else:
            w = np.array([row.get(weighting_metric_name, 0.0) for row in rows if key in row])
            out[key] = float(values @ w / w.sum()) if w.sum() > 0 else float(values.mean())
    return out


def dp_wrapper(strategy: Any) -> Any | None:
    """The Flower DP wrapper (``DifferentialPrivacy...``) in a chain of wrappers, if any."""
    seen = 0
    while strategy is not None and seen < 16:
        if type(strategy).__name__.startswith("DifferentialPrivacy"):
            return strategy
        strategy, seen = getattr(strategy, "__dict__", {}).get("strategy"), seen + 1
    return None


@contextmanager
def dp_noise_seeded(seed: Any, server_round: int) -> Iterator[None]:
    """Seed the noise of Flower's DP wrappers (numpy's global generator) from the run's
    ``seed`` and the round, so a run repeats bit for bit; the global state is restored.

    The noise is then as secret as the seed: fine for simulations, where the seed is recorded
    to reproduce the run; a real deployment must keep its seed private (or pass None: the
    wrappers then draw from the process's unseeded generator).
    """
    if seed is None:
        yield
        return
    saved = np.random.get_state()  # noqa: NPY002 (Flower draws from the legacy global)
    entropy = np.random.SeedSequence([int(seed), int(server_round), 0xD9])
    np.random.seed(entropy.generate_state(1)[0])  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def train_messages(
    strategy: Any,
    grid: Grid,
    arrays: Mapping[str, np.ndarray],
    server_round: int,
    config: Mapping[str, Any],
    nodes: Sequence[int] | None = None,
) -> list[Message]:
    """The round's train messages: the strategy's (it samples) or one per chosen node."""
    record, cfg = to_record(arrays), ConfigRecord(dict(config))
    if nodes is None:
        return list(strategy.configure_train(server_round, record, cfg, grid))
    cfg["server-round"] = server_round
    dp = dp_wrapper(strategy)
    if dp is not None and type(dp).__name__.startswith("DifferentialPrivacyClientSide"):
        if not hasattr(dp, "clipping_norm"):
            raise FederationError(
                "client-side adaptive clipping needs the strategy to sample the nodes; with "
                "chosen nodes use dp = 'client-fixed' or a central mode"
            )
        # what Flower's wrapper puts in the config for its client mod (fixedclipping_mod)
        from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

        cfg[KEY_CLIPPING_NORM] = float(dp.clipping_norm)
    return [
        Message(
            content=RecordDict({ARRAY_KEY: record, "config": cfg}),
            dst_node_id=int(node),
            message_type=MessageType.TRAIN,
        )
        for node in nodes
    ]


def exchange(
    grid: Grid,
    messages: Sequence[Message],
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    poll: float = 0.05,
) -> list[Message]:
    """Push ``messages`` and pull their replies until all arrived, ``timeout`` seconds passed
    (the late ones are missing), or ``stop`` is set (KeyboardInterrupt)."""
    if not messages:
        return []
    waiting = set(grid.push_messages(messages))
    deadline = None if timeout is None else time.monotonic() + timeout
    replies: list[Message] = []
    while waiting:
        got = list(grid.pull_messages(waiting))
        replies.extend(got)
        waiting.difference_update(m.metadata.reply_to_message_id for m in got)
        if not waiting or (deadline is not None and time.monotonic() > deadline):
            break
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt("the run was stopped while waiting for the devices")
        time.sleep(poll)
    return replies


def train_round(
    grid: Grid,
    strategy: Any,
    arrays: Mapping[str, np.ndarray],
    server_round: int,
    config: Mapping[str, Any],
    *,
    nodes: Sequence[int] | None = None,
    hooks: Iterable[RoundHook] = (),
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> RoundResult:
    """One federated training round (see the module docstring).

    Args:
        grid: the ServerApp's grid (Simulation or Deployment Engine).
        strategy: a ``flwr.serverapp.strategy`` strategy (``make_strategy``).
        arrays: the global arrays (name -> array).
        server_round: 1-based round number.
        config: what the nodes receive as their ``config`` record.
        nodes: node ids chosen by the caller (None: the strategy samples). With chosen nodes
            and a client-side fixed-clipping DP wrapper, the config carries its clipping norm
            as the wrapper's own ``configure_train`` would (the ClientApp clips with Flower's
            ``fixedclipping_mod``).
        hooks: called after aggregation, in order (see :class:`RoundHook`).
        timeout: seconds to wait for replies (None: until all arrive).
        stop: when set while waiting, the round ends with KeyboardInterrupt (Ctrl-C).
    """
    start = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    messages = train_messages(strategy, grid, start, server_round, config, nodes)
    replies = exchange(grid, messages, timeout=timeout, stop=stop)
    good: list[Message] = []
    updates: list[ClientUpdate] = []
    declined: list[int] = []
    rejected: dict[int, str] = {}
    # A fixed order (the caller's, else by node id) makes the aggregate's floating-point sums,
    # and so the run, repeat exactly: replies arrive in any order, node ids differ per run.
    order = {int(n): i for i, n in enumerate(nodes or ())}

    def position(msg: Message) -> int:
        node = int(msg.metadata.src_node_id)
        return order.get(node, len(order)) if order else node

    for msg in sorted(replies, key=position):
        try:
            update = check_reply(msg, start)
        except FederationError as exc:
            rejected[int(msg.metadata.src_node_id)] = str(exc)
            continue
        if update.num_examples == 0:
            declined.append(update.node_id)
        else:
            good.append(msg)
            updates.append(update)
    new, metrics = dict(start), {}
    if good:
        dp = dp_wrapper(strategy)
        if dp is not None:
            # The wrapper sizes its noise for num_sampled_clients; the average is over the
            # replies that arrived and passed, so the noise must be sized for those.
            dp.num_sampled_clients = len(good)
        with dp_noise_seeded(None if dp is None else config.get("seed"), server_round):
            record, aggregated = strategy.aggregate_train(server_round, good)
        if record is not None:
            new = from_record(record)
        metrics = {k: float(v) for k, v in (aggregated or {}).items()}
    metrics.update(clients=float(len(updates)), declined=float(len(declined)))
    metrics["rejected"] = float(len(rejected))
    for hook in hooks:
        metrics.update({k: float(v) for k, v in hook(server_round, start, updates, new).items()})
    return RoundResult(server_round, new, updates, declined, rejected, metrics)


def evaluate_round(
    grid: Grid,
    strategy: Any,
    arrays: Mapping[str, np.ndarray],
    server_round: int,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
) -> dict[str, float]:
    """Federated evaluation of ``arrays`` (round 0: before any training) by the strategy."""
    record, cfg = to_record(arrays), ConfigRecord(dict(config))
    messages = list(strategy.configure_evaluate(server_round, record, cfg, grid))
    if not messages:
        return {}
    replies = [m for m in grid.send_and_receive(messages, timeout=timeout) if m.has_content()]
    ok = []
    for m in replies:
        try:
            _finite_metrics(m.content)
        except FederationError:
            continue
        ok.append(m)
    aggregated = strategy.aggregate_evaluate(server_round, ok) if ok else None
    return {k: float(v) for k, v in (aggregated or {}).items()}


def wait_for_nodes(grid: Grid, want: int | None, timeout: float = 120.0) -> list[int]:
    """The federation's node ids, once ``want`` are connected (None: once the count is stable
    for 3 s). Raises FederationError naming both counts when ``want`` never connect."""
    deadline, seen, since = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        ids = sorted(int(n) for n in grid.get_node_ids())
        if want is not None and len(ids) >= want:
            return ids
        if want is None and ids and len(ids) == seen and time.monotonic() - since >= 3.0:
            return ids
        if len(ids) != seen:
            seen, since = len(ids), time.monotonic()
        if time.monotonic() > deadline:
            raise FederationError(
                f"{len(ids)} nodes connected within {timeout:.0f} s, the run needs "
                f"{want if want is not None else 'at least 1'}: start more SuperNodes or set "
                "num-nodes to the federation's size (0: use every connected node)"
            )
        time.sleep(0.2)
