"""Gossip averaging over a social graph: synchronous, randomized pairwise, and push-sum.

Every protocol drives each node's value toward the mean of all initial values, using only
messages between neighbours. Failures are part of the model:

- ``churn``: each round, each node is offline with this probability (it neither sends nor
  receives); ``offline``: nodes that never come online.
- ``drop``: each link (sync, pairwise) or message (push-sum) fails with this probability;
  a failed exchange changes neither side, so sums (and the mean) are preserved.
- ``delay`` (sync): each message arrives ``0..delay`` rounds late; nodes then agree on a
  value near, not exactly at, the mean.
- ``noise``: a hook ``noise(values, rng) -> values`` applied to everything a node sends
  (local differential privacy); its own value stays exact. It gets the (n, D) rows of all
  nodes at once and is called once per round: each node broadcasts one noised copy.

``sync``: ``x <- W x`` with Metropolis weights (links that fail fold back to the diagonal).
``pairwise``: each round a random matching of the available links averages its pairs.
``push_sum`` (Kempe et al. 2003): on a (strongly connected) digraph, every node keeps a
(sum, weight) pair and splits both equally among itself and its out-neighbours; its estimate
is sum / weight. Undelivered shares stay with the sender.

Example:
    >>> import networkx as nx, numpy as np
    >>> trace = gossip_average(nx.cycle_graph(6), np.arange(6.0), rounds=200, rng=0)
    >>> bool(trace.relative_errors[-1] < 1e-9), round(float(trace.final.mean()), 9)
    (True, 2.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
import numpy as np
from scipy import sparse

from ._errors import GraphError
from .noise import NoiseHook
from .topology import Topology, as_topology, connects, metropolis_edge_weights

Protocol = Literal["sync", "pairwise", "push_sum"]
Record = Literal["all", "last", "errors"]
PROTOCOLS = ("sync", "pairwise", "push_sum")
# Refuse record="all" beyond this many stored values; use record="errors" or "last".
_MAX_RECORDED = 200_000_000


@dataclass(frozen=True)
class GossipTrace:
    """What a gossip run did.

    Attributes:
        values: (rounds + 1, n, ...) every node's estimate per round (``record="all"``),
            else None.
        final: (n, ...) estimates after the last round.
        errors: (rounds + 1,) Frobenius distance of the estimates to the true mean.
        mean: (...) the true mean of the initial values.
        messages: (rounds,) messages sent per round, including ones lost to ``drop``.
        bytes: (rounds,) payload bytes sent per round.
        connected: (rounds,) the links available that round connected every node.
        union_connected: the links that delivered at least once connect every node
            (strongly, for push-sum): the condition for reaching the mean eventually.
        protocol: the protocol run.
    """

    values: np.ndarray | None
    final: np.ndarray
    errors: np.ndarray
    mean: np.ndarray
    messages: np.ndarray
    bytes: np.ndarray
    connected: np.ndarray
    union_connected: bool
    protocol: str

    @property
    def relative_errors(self) -> np.ndarray:
        """(rounds + 1,) errors divided by the initial error (0 if that is 0)."""
        e0 = self.errors[0]
        return self.errors / e0 if e0 > 0 else np.zeros_like(self.errors)

    def rounds_to(self, tol: float) -> int | None:
        """First round whose relative error is <= tol, or None."""
        hit = np.flatnonzero(self.relative_errors <= tol)
        return int(hit[0]) if hit.size else None

    def report(self, tol: float = 1e-6) -> dict[str, Any]:
        """Convergence summary, saying why when the mean was not reached."""
        reached = self.rounds_to(tol)
        disconnected = int((~self.connected).sum())
        flat = self.final.reshape(self.final.shape[0], -1).astype(np.float64)
        e0 = self.errors[0] if self.errors[0] > 0 else 1.0
        disagreement = float(np.sqrt(((flat - flat.mean(axis=0)) ** 2).sum()) / e0)
        if reached is not None:
            note = f"reached relative error {tol:g} after {reached} rounds"
        elif disagreement <= tol:
            note = (
                "nodes agree, but on a value off the true mean (delayed or noised messages "
                "do not preserve the sum)"
            )
        elif not self.union_connected:
            note = (
                "cannot converge: the links that ever delivered a message leave the graph "
                "disconnected, so some nodes never hear from the others"
            )
        else:
            note = (
                f"not converged yet: the graph stayed connected through the run but "
                f"{disconnected} of {self.connected.size} rounds were disconnected; "
                "run more rounds"
            )
        return {
            "protocol": self.protocol,
            "converged": reached is not None,
            "rounds_to_tol": reached,
            "final_relative_error": float(self.relative_errors[-1]),
            "final_disagreement": disagreement,
            "disconnected_rounds": disconnected,
            "union_connected": self.union_connected,
            "messages": int(self.messages.sum()),
            "bytes": int(self.bytes.sum()),
            "note": note,
        }


class _Run:
    """Shared state of one gossip run: failures, accounting, recording."""

    def __init__(
        self,
        n: int,
        rounds: int,
        *,
        churn: float,
        offline: np.ndarray,
        drop: float,
        rng: np.random.Generator,
        payload_bytes: int,
    ) -> None:
        self.n, self.churn, self.offline, self.drop, self.rng = n, churn, offline, drop, rng
        self.payload_bytes = payload_bytes
        self.messages = np.zeros(rounds, dtype=np.int64)
        self.bytes = np.zeros(rounds, dtype=np.int64)
        self.connected = np.zeros(rounds, dtype=bool)
        self.errors = np.full(rounds + 1, np.nan)  # errors[0] may come from a step's own work
        self.mean = np.zeros(0)  # (D,) float64 true mean of the initial values
        self.history: list[np.ndarray] | None = None
        self.shape: tuple[int, ...] = ()
        self.final: np.ndarray | None = None

    @property
    def static(self) -> bool:
        return self.churn == 0 and self.drop == 0 and not self.offline.any()

    def online(self) -> np.ndarray:
        up = ~self.offline
        if self.churn > 0:
            up = up & (self.rng.random(self.n) >= self.churn)
        return up

    def survives(self, m: int) -> np.ndarray:
        if self.drop == 0:
            return np.ones(m, dtype=bool)
        return self.rng.random(m) >= self.drop

    def end_round(self, t: int, est: np.ndarray, messages: int, message_bytes: int) -> None:
        """Account round ``t``'s messages and record the estimates after it."""
        self.messages[t] = messages
        self.bytes[t] = messages * message_bytes
        self.record(t, est)

    def record(self, t: int, est: np.ndarray) -> None:
        """The error (and, recording all, the values) of the (n, D) estimates after round t."""
        self.errors[t + 1] = _distance(est, self.mean)
        if self.history is not None:
            self.history.append(est.reshape((self.n, *self.shape)).copy())
        self.final = est

    def end_run(
        self,
        x: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        delivered: np.ndarray,
        strong: bool = False,
    ) -> bool:
        """Whether the links that ever delivered connect every node (False for 0 rounds)."""
        if self.messages.size == 0:
            self.final = x
            return False
        return self.is_connected(src[delivered], dst[delivered], strong=strong)

    def is_connected(self, src: np.ndarray, dst: np.ndarray, strong: bool = False) -> bool:
        return connects(self.n, src, dst, strong=strong)


# Rows wider than this are cut into column blocks of ~2 MB: a sparse product over a block
# reads its rows from cache, not RAM (measured ~5x faster for 1,000 x 100,000 float32).
# Narrower rows (up to a few thousand values) already fit: blocking them only adds copies.
_ROW_BYTES = 1 << 15
_BLOCK_BYTES = 1 << 21


def _blocks(x: np.ndarray) -> list[slice]:
    """Column slices of (n, D) ``x``: one when a row fits in cache, else ~2 MB blocks."""
    d = x.shape[1]
    if d * x.dtype.itemsize <= _ROW_BYTES:
        return [slice(0, d)]
    width = max(64, _BLOCK_BYTES // max(1, x.shape[0] * x.dtype.itemsize))
    return [slice(lo, min(lo + width, d)) for lo in range(0, d, width)]


def _apply(W: sparse.csr_matrix, x: np.ndarray) -> np.ndarray:
    """``W @ x`` for a sparse (n, n) W and a dense (n, D) x, in cache-sized column blocks."""
    cols = _blocks(x)
    if len(cols) == 1:
        return W @ x
    out = np.empty_like(x)
    for c in cols:
        out[:, c] = W @ np.ascontiguousarray(x[:, c])
    return out


def _distance(est: np.ndarray, mean: np.ndarray) -> float:
    """Frobenius distance of (n, D) estimates to the (D,) mean, a block at a time."""
    m = mean.astype(est.dtype)
    total = 0.0
    for c in _blocks(est):
        diff = (est[:, c] - m[c]).ravel()
        total += float(np.dot(diff, diff))
    return float(np.sqrt(total))


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in ``a``: a sum (one pass, no temporary); the exact elementwise check
    runs only when the sum is not finite (NaN, inf, or an overflow of finite values)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return True
    return bool(np.isfinite(a).all())


def _as_values(n: int, values: object) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim == 0 or x.shape[0] != n:
        raise GraphError(f"values must have one row per node ({n}), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _finite_mean(x: np.ndarray) -> np.ndarray:
    """(D,) float64 column means of (n, D) ``x``, which must be finite (a NaN or inf makes its
    column's mean non-finite; only then is every value checked)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=0, dtype=np.float64)
    if not np.isfinite(mean).all() and not np.isfinite(x).all():
        raise GraphError("values must be finite")
    return mean


def _sync_step(
    x: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    w: np.ndarray,
    active: np.ndarray,
    sent_history: list[np.ndarray],
    lag: np.ndarray | None,
) -> np.ndarray:
    """One synchronous round over the ``active`` links; ``lag`` (2m,) delays each message."""
    n = x.shape[0]
    s, d, ww = src[active], dst[active], w[active]
    deg = np.bincount(s, ww, minlength=n) + np.bincount(d, ww, minlength=n)
    out = x * (1.0 - deg).astype(x.dtype)[:, None]
    rows, cols = np.concatenate([s, d]), np.concatenate([d, s])
    weights = np.concatenate([ww, ww]).astype(x.dtype)
    # Each directed message carries its own delay; a late message uses an older sent value.
    if lag is None:
        lag = np.zeros(rows.size, dtype=np.int64)
    for tau in np.unique(lag):
        k = lag == tau
        A = sparse.csr_matrix((weights[k], (rows[k], cols[k])), shape=(n, n))
        out += _apply(A, sent_history[min(int(tau), len(sent_history) - 1)])
    return out


def _send(x: np.ndarray, noise: NoiseHook | None, rng: np.random.Generator) -> np.ndarray:
    """What the nodes send this round: one (noised) copy of each row, broadcast to neighbours.

    Raises:
        GraphError: the hook changed the shape or returned NaN or inf.
    """
    if noise is None:
        return x
    sent = np.asarray(noise(x, rng))
    name = getattr(noise, "__name__", repr(noise))
    if sent.shape != x.shape:
        raise GraphError(
            f"noise must return an array of the shape it was given {x.shape}, got {sent.shape} "
            f"(hook {name})"
        )
    if not _all_finite(sent):
        raise GraphError(f"noise hook {name} returned NaN or inf; it must return finite values")
    return sent.astype(x.dtype, copy=False)


def gossip_average(
    G: nx.Graph | Topology,
    values: np.ndarray,
    rounds: int,
    *,
    protocol: Protocol = "sync",
    rng: np.random.Generator | int | None = None,
    churn: float = 0.0,
    offline: list | None = None,
    drop: float = 0.0,
    delay: int = 0,
    noise: NoiseHook | None = None,
    record: Record = "all",
) -> GossipTrace:
    """Average ``values`` over ``G`` by gossip for ``rounds`` rounds.

    Args:
        G: social graph; a ``networkx.DiGraph`` is allowed for ``push_sum`` only. A
            :class:`graphs.topology.Topology` of it gives the same results and skips reading
            the graph's edges again (for callers that gossip over one graph many times).
        values: (n,) or (n, d, ...) float, one row per node in ``list(G)`` order
            (e.g. flattened adapter weights).
        rounds: number of rounds, >= 0.
        protocol: ``"sync"`` | ``"pairwise"`` | ``"push_sum"``.
        rng: seed or Generator for failures, matchings and noise.
        churn: per-round probability that a node is offline, in [0, 1).
        offline: nodes that are never online (e.g. departed users).
        drop: per-link (per-message for push-sum) failure probability, in [0, 1).
        delay: sync only: messages arrive up to this many rounds late.
        noise: hook applied to every value a node sends (local DP); sync and pairwise.
        record: ``"all"`` keeps every round's values (the default, for analysis);
            ``"errors"`` / ``"last"`` keep only errors and final values (large d).

    Returns:
        GossipTrace with ``.values`` (rounds + 1, n, ...) (``record="all"``), ``.errors``,
        message and byte counts and a connectivity report.
    """
    if protocol not in PROTOCOLS:
        raise GraphError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    if record not in ("all", "last", "errors"):
        raise GraphError(f"record must be 'all', 'last' or 'errors', got {record!r}")
    if int(rounds) != rounds or rounds < 0:
        raise GraphError(f"rounds must be an integer >= 0, got {rounds}")
    for name, p in (("churn", churn), ("drop", drop)):
        if not 0 <= p < 1:
            raise GraphError(f"{name} must be a probability in [0, 1), got {p}")
    if int(delay) != delay or delay < 0:
        raise GraphError(f"delay must be an integer >= 0, got {delay}")
    if delay and protocol != "sync":
        raise GraphError("delay is modelled for protocol='sync' only")
    if noise is not None and protocol == "push_sum":
        raise GraphError("noise hooks apply to 'sync' and 'pairwise' (push-sum mass would drift)")
    topo = as_topology(G)
    if topo.directed and protocol != "push_sum":
        raise GraphError(f"protocol {protocol!r} needs an undirected graph; use 'push_sum'")

    x0 = _as_values(topo.n, values)
    n, shape = x0.shape[0], x0.shape[1:]
    x = x0.reshape(n, -1)  # read only: every step builds new arrays
    if record == "all" and (rounds + 1) * x.size > _MAX_RECORDED:
        raise GraphError(
            f"record='all' would store {(rounds + 1) * x.size:,} values; use record='errors'"
        )
    gen = np.random.default_rng(rng)
    off = np.zeros(n, dtype=bool)
    for v in offline or []:
        if v not in topo.index:
            raise GraphError(f"offline node {v!r} is not in the graph")
        off[topo.index[v]] = True
    run = _Run(
        n,
        rounds,
        churn=churn,
        offline=off,
        drop=drop,
        rng=gen,
        payload_bytes=x.shape[1] * x.dtype.itemsize,
    )
    mean = _finite_mean(x)
    run.history = [x0.copy()] if record == "all" else None
    run.mean, run.shape = mean, shape
    step = {"sync": _run_sync, "pairwise": _run_pairwise, "push_sum": _run_push_sum}[protocol]
    union_connected = step(topo, run, x, rounds, delay, noise)
    if np.isnan(run.errors[0]):
        run.errors[0] = _distance(x, mean)
    final = x.copy() if run.final is x else run.final  # never the caller's own array
    return GossipTrace(
        values=None if run.history is None else np.stack(run.history),
        final=final.reshape((n, *shape)),
        errors=run.errors,
        mean=mean.reshape(shape),
        messages=run.messages,
        bytes=run.bytes,
        connected=run.connected,
        union_connected=union_connected,
        protocol=protocol,
    )


def _run_sync(
    topo: Topology, run: _Run, x: np.ndarray, rounds: int, delay: int, noise: NoiseHook | None
) -> bool:
    src, dst = topo.src, topo.dst
    if run.static and not delay:
        return _run_static_sync(topo, run, x, rounds, noise)
    w = metropolis_edge_weights(run.n, src, dst)
    every = np.ones(src.size, dtype=bool)
    if run.static:
        run.connected[:] = topo.connected
    delivered = np.zeros(src.size, dtype=bool)
    sent: list[np.ndarray] = []
    for t in range(rounds):
        sent.insert(0, _send(x, noise, run.rng))
        del sent[delay + 1 :]
        if run.static:
            linked = active = every
        else:
            up = run.online()
            linked = up[src] & up[dst]  # both ends online: they exchange, maybe lost to drops
            active = linked & run.survives(src.size)
            run.connected[t] = run.is_connected(src[active], dst[active])
        lag = run.rng.integers(0, delay + 1, size=2 * int(active.sum())) if delay else None
        x = _sync_step(x, src, dst, w, active, sent, lag)
        delivered |= active
        run.end_round(t, x, 2 * int(linked.sum()), run.payload_bytes)
    return run.end_run(x, src, dst, delivered)


def _run_static_sync(
    topo: Topology, run: _Run, x: np.ndarray, rounds: int, noise: NoiseHook | None
) -> bool:
    """Sync gossip with every link up every round: ``x <- W x`` with W built once per dtype.

    Without noise it iterates the deviation ``y = x - mean`` (W is doubly stochastic, so
    ``W y = W x - mean``): the error is then ``||y||``, one reduction, and the estimates
    ``y + mean`` are formed only when recorded. Rows wider than a cache line budget stay in
    contiguous column blocks for the whole run (no per-round copies). With noise, each node
    keeps ``W_ii x_i`` of its own value and receives ``W_ij sent_j``.
    """
    W = topo.metropolis(x.dtype)
    run.connected[:] = topo.connected
    run.messages[:] = 2 * topo.src.size
    run.bytes[:] = run.messages * run.payload_bytes
    if rounds and noise is not None:
        diag = W.diagonal()[:, None]
        off = (W - sparse.diags(W.diagonal())).tocsr()
        for t in range(rounds):
            x = diag * x + _apply(off, _send(x, noise, run.rng))
            run.record(t, x)
    elif rounds:
        m = run.mean.astype(x.dtype)
        blocks = [x[:, c] - m[c] for c in _blocks(x)]
        run.errors[0] = math.sqrt(sum(float(np.dot(b.ravel(), b.ravel())) for b in blocks))
        if len(blocks) == 1 and run.history is None:
            blocks = [_deviation_rounds(W, blocks[0], run.errors[1:])]
        for t in range(rounds if len(blocks) > 1 or run.history is not None else 0):
            blocks = [W @ b for b in blocks]
            run.errors[t + 1] = math.sqrt(sum(float(np.dot(b.ravel(), b.ravel())) for b in blocks))
            if run.history is not None:
                run.history.append((np.concatenate(blocks, axis=1) + m).reshape(run.n, *run.shape))
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        x += m  # our own array: the estimates in place
    run.final = x
    return bool(run.connected[0]) if rounds else False


def _deviation_rounds(W: sparse.csr_matrix, y: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """``len(errors)`` rounds ``y <- W y`` of a contiguous (n, D) ``y``, writing each round's
    ``||y||`` into ``errors``: the hot loop, a product and one reduction per round."""
    for t in range(errors.size):
        y = W @ y
        flat = y.ravel()
        errors[t] = flat @ flat
    np.sqrt(errors, out=errors)
    return y


def _run_pairwise(
    topo: Topology, run: _Run, x: np.ndarray, rounds: int, delay: int, noise: NoiseHook | None
) -> bool:
    src, dst = topo.src, topo.dst
    delivered = np.zeros(src.size, dtype=bool)
    if run.static:
        run.connected[:] = topo.connected
    for t in range(rounds):
        up = run.online()
        active = up[src] & up[dst] & run.survives(src.size)
        if not run.static:
            run.connected[t] = run.is_connected(src[active], dst[active])
        # A random matching: an available link is chosen when its random priority is the
        # largest among all available links at both of its ends.
        prio = np.where(active, run.rng.random(src.size), -1.0)
        best = np.full(run.n, -1.0)
        np.maximum.at(best, src, prio)
        np.maximum.at(best, dst, prio)
        chosen = active & (prio == best[src]) & (prio == best[dst])
        i, j = src[chosen], dst[chosen]
        sent = _send(x, noise, run.rng)
        xi, xj = (x[i] + sent[j]) / 2, (x[j] + sent[i]) / 2
        x = x.copy()
        x[i], x[j] = xi, xj
        delivered |= chosen
        run.end_round(t, x, 2 * int(chosen.sum()), run.payload_bytes)
    return run.end_run(x, src, dst, delivered)


def _run_push_sum(
    topo: Topology, run: _Run, x: np.ndarray, rounds: int, delay: int, noise: NoiseHook | None
) -> bool:
    src, dst = topo.src, topo.dst
    if not topo.directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    share = 1.0 / (np.bincount(src, minlength=run.n) + 1.0)  # self + out-neighbours
    s = x.astype(np.float64)
    weight = np.ones(run.n)
    delivered = np.zeros(src.size, dtype=bool)
    static = run.static
    if static:
        frac0 = share[src]
        leave0 = np.bincount(src, frac0, minlength=run.n)
        P0 = sparse.csr_matrix((frac0, (dst, src)), shape=(run.n, run.n))
        run.connected[:] = run.is_connected(src, dst, strong=True)
    for t in range(rounds):
        if static:
            sending = ok = np.ones(src.size, dtype=bool)
            leave, P = leave0, P0
        else:
            up = run.online()
            sending = up[src]
            ok = sending & up[dst] & run.survives(src.size)
            run.connected[t] = run.is_connected(src[ok], dst[ok], strong=True)
            frac = np.where(ok, share[src], 0.0)
            leave = np.bincount(src, frac, minlength=run.n)
            P = sparse.csr_matrix((frac, (dst, src)), shape=(run.n, run.n))
        s = s * (1.0 - leave)[:, None] + P @ s
        weight = weight * (1.0 - leave) + P @ weight
        delivered |= ok
        estimate = (s / weight[:, None]).astype(x.dtype)
        run.end_round(t, estimate, int(sending.sum()), run.payload_bytes + 8)  # + the weight
    return run.end_run(x, src, dst, delivered, strong=True)
