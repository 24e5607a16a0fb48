"""A device-sized student distilled from the agents' scorer (the teacher).

The teacher is the federated MiniLM LoRA agent (:func:`lora_teacher`: its adapter + head over
the backbone's embeddings) or a causal LM's log-likelihood scorer (:func:`loglik_teacher`,
SmolLM2). The student is a hashed bag of words: a text's word unigrams and bigrams are hashed
(CRC-32) into ``buckets`` rows of an embedding table ``T`` (buckets, dim); the text's vector is
the normalised sum of its rows. It scores exactly as the teacher's head does, with the
context vector ``c`` the recency-weighted, normalised sum of the event vectors
(:func:`agents.scoring.context_vector`, the same weights as the teacher):

    v(text) = sum_f T_f / ||sum_f T_f||          f: hashed n-grams of the text
    logit_j = scale * <c, v(ad_j)> + prior_weight * r_j + bias,     CTR_j = sigmoid(logit_j)

Parameters: ``buckets * dim + 3`` (4,096 x 32: 131,075, 512 KiB in fp32). Per decision with
``n`` candidates whose vectors are cached: ``2 * n * dim`` FLOPs (100 x 32: 6,400) against the
warm teacher's ``2 * n * d`` (d = 384 for MiniLM: 76,800); a new ad text costs its
``n_grams * dim`` additions instead of a transformer forward pass.

Distillation (:func:`distill`) fits ``T`` and the head on the teacher's logits ``t`` over
each context's candidate list (the catalogue given), listwise with temperature ``tau`` plus a
pointwise term that keeps the student's CTR calibrated (the auction multiplies bids by it):

    loss = tau^2 KL(softmax(t / tau) || softmax(s / tau)) + pointwise * BCE(sigmoid(s), sigmoid(t))

(Hinton et al. 2015). :func:`distill_lists` gives each context its own candidate list (the
teacher labels context i on its list only), for teachers that cost per candidate, such as
SmolLM2's log-likelihood. The privacy rule: the contexts are either public pseudo-contexts built
from public ad texts (:func:`public_contexts`) or, in :func:`distill_federated`, each device's
own context, distilled on the device and averaged by the server (FedAvg over student states,
McMahan et al. 2017), optionally followed by FedDF's server-side ensemble distillation on
public pseudo-contexts (Lin et al. 2020).

Example:
    >>> ctx = PrivateContext()
    >>> _ = ctx.add("view", "red summer dress", time=0.0)
    >>> s = Student.initial(buckets=64, dim=4, rng=0)
    >>> s.predict_ctr(ctx, ["a red dress", "coffee beans"]).shape
    (2,)
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._errors import AgentError
from .accountant import UserAccountant, gaussian
from .context import PrivateContext
from .dp_sgd import private_gradient
from .lora import activate, state_version
from .models import Backbone
from .prompts import MAX_EVENTS, ad_continuation, context_prompt
from .scoring import HEAD_KEYS, context_vector, logits, predict_ctr
from .training import RngLike

__all__ = [
    "DistillConfig",
    "DistillResult",
    "Student",
    "Teacher",
    "average_students",
    "distill",
    "distill_federated",
    "distill_lists",
    "loglik_teacher",
    "lora_teacher",
    "public_contexts",
    "teacher_logits",
]

Teacher = Callable[[PrivateContext, Sequence[str], np.ndarray], np.ndarray]
"""``teacher(context, ad_texts, priors) -> (n,) logits`` of the ads for that context."""

STATE_KEYS = ("student.table", "student.scale", "student.prior", "student.bias")
_WORD = re.compile(r"[a-z0-9]+")
_CACHE_LIMIT = 200_000  # texts whose vectors a student keeps (cleared when full)


def ngram_ids(text: str, buckets: int) -> np.ndarray:
    """(f,) int64 hashed ids of the lower-cased word unigrams and bigrams of ``text``
    (CRC-32 modulo ``buckets``: the same on every machine); a text without words maps to
    bucket 0."""
    words = _WORD.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    ids = [zlib.crc32(g.encode()) % buckets for g in grams] or [0]
    return np.array(ids, dtype=np.int64)


def _check_state(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fp32 copies of a student state after checking keys, shapes and finiteness."""
    if set(state) != set(STATE_KEYS):
        raise AgentError(f"student state needs exactly the keys {STATE_KEYS}, got {sorted(state)}")
    out = {k: np.array(state[k], dtype=np.float32) for k in STATE_KEYS}
    table = out["student.table"]
    if table.ndim != 2 or min(table.shape) < 1:
        raise AgentError(f"student.table must be (buckets, dim) >= 1, got shape {table.shape}")
    for k in STATE_KEYS[1:]:
        if out[k].shape != (1,):
            raise AgentError(f"{k} must have shape (1,), got {out[k].shape}")
    if not all(np.isfinite(v).all() for v in out.values()):
        raise AgentError("student state holds NaN or infinite values")
    return out


class Student:
    """The device's scorer: a hashed bag-of-words text encoder and the teacher's head form.

    Args:
        state: ``student.table`` (buckets, dim), ``student.scale``, ``student.prior``,
            ``student.bias`` (each (1,)); fp32 arrays (copied).

    Attributes:
        head: its scale, prior weight and bias as an :mod:`agents.scoring` head with gain 1
            (read only): :meth:`logits` is :func:`agents.scoring.logits` under it.

    Raises:
        AgentError: missing or extra keys, wrong shapes, non-finite values.
    """

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self._state = _check_state(state)
        s = self._state
        self.head = {
            "head.gain": np.ones(self.dim, dtype=np.float32),
            "head.scale": s["student.scale"],
            "head.prior": s["student.prior"],
            "head.bias": s["student.bias"],
        }
        self._vectors: dict[str, np.ndarray] = {}
        self._ctx_key: tuple[int, int] | None = None
        self._ctx = np.zeros(0, np.float32)

    @classmethod
    def initial(cls, buckets: int = 4096, dim: int = 32, rng: RngLike = None) -> Student:
        """A random student: table rows N(0, 1 / dim), scale 4, prior weight 0, bias -4."""
        if int(buckets) != buckets or buckets < 1 or int(dim) != dim or dim < 1:
            raise AgentError(f"buckets and dim must be integers >= 1, got {buckets}, {dim}")
        gen = np.random.default_rng(rng)
        table = gen.normal(0.0, 1.0 / math.sqrt(dim), (buckets, dim)).astype(np.float32)
        return cls({STATE_KEYS[0]: table, **_head(4.0, 0.0, -4.0)})

    @property
    def buckets(self) -> int:
        """Rows of the hashed embedding table."""
        return self._state["student.table"].shape[0]

    @property
    def dim(self) -> int:
        """Width of the text and context vectors."""
        return self._state["student.table"].shape[1]

    @property
    def params(self) -> int:
        """Number of parameters (table + scale, prior weight, bias)."""
        return sum(v.size for v in self._state.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the fp32 state (what the device stores and the server sends)."""
        return sum(v.nbytes for v in self._state.values())

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the fp32 state."""
        return {k: v.copy() for k, v in self._state.items()}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) unit-norm vectors of ``texts`` (cached per text on this student)."""
        table, out = self._state["student.table"], np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            vec = self._vectors.get(text)
            if vec is None:
                vec = table[ngram_ids(text, self.buckets)].sum(0)
                vec /= max(float(np.linalg.norm(vec)), 1e-12)
                if len(self._vectors) >= _CACHE_LIMIT:
                    self._vectors.clear()
                self._vectors[text] = vec
            out[i] = vec
        return out

    def context_vector(self, context: PrivateContext) -> np.ndarray:
        """(dim,) the context's vector (cached per context object and version)."""
        key = (id(context), context.version)
        if key != self._ctx_key:
            events = context.scored_events()
            emb = self.embed([e.text for e in events])
            self._ctx = context_vector(emb, context.weights(events))
            self._ctx_key = key
        return self._ctx

    def logits(
        self, context: PrivateContext, ad_texts: Sequence[str], priors: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """(n,) logits of ``ad_texts`` for ``context``; ``priors`` (n,) or scalar."""
        return logits(self.context_vector(context), self.embed(ad_texts), self.head, priors)

    def predict_ctr(
        self, context: PrivateContext, ad_texts: Sequence[str], priors: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """(n,) predicted click probabilities, in (0, 1)."""
        return predict_ctr(self.context_vector(context), self.embed(ad_texts), self.head, priors)

    def flops(self, n_candidates: int = 100, *, cached: bool = True) -> int:
        """FLOPs of one decision over ``n_candidates`` ads: ``2 n dim`` with cached ad vectors
        (a multiply-add per component), plus ``(n-grams + 3) dim`` per ad when each is
        embedded (its n-gram rows summed, normalised), taken at 16 n-grams per text."""
        per_ad = 2 * self.dim + (0 if cached else (16 + 3) * self.dim)
        return n_candidates * per_ad


def _head(scale: float, prior: float, bias: float) -> dict[str, np.ndarray]:
    return {
        "student.scale": np.array([scale], np.float32),
        "student.prior": np.array([prior], np.float32),
        "student.bias": np.array([bias], np.float32),
    }


def lora_teacher(backbone: Backbone, state: Mapping[str, np.ndarray]) -> Teacher:
    """The MiniLM LoRA agent as a teacher: logits of :func:`agents.scoring.logits` under the
    adapter + head ``state`` (embeddings come from the backbone's shared cache)."""
    adapter = {k: np.asarray(v, np.float32) for k, v in state.items() if k not in HEAD_KEYS}
    head = {k: np.asarray(state[k], np.float32) for k in HEAD_KEYS}
    version = state_version(adapter)

    def teacher(context: PrivateContext, ad_texts: Sequence[str], priors: np.ndarray) -> np.ndarray:
        activate(backbone, adapter, version)
        events = context.scored_events()
        emb = backbone.embed([e.text for e in events]) if events else np.zeros((0, backbone.dim))
        cvec = context_vector(emb.astype(np.float32), context.weights(events))
        return logits(cvec, backbone.embed(list(ad_texts)), head, priors)

    return teacher


def loglik_teacher(backbone: Backbone, max_events: int = MAX_EVENTS) -> Teacher:
    """A causal LM as a teacher: each ad's mean token log-probability (nats) as the
    continuation :func:`agents.prompts.ad_continuation` after the loglik agent's scoring prompt
    :func:`agents.prompts.context_prompt` (``max_events`` newest scored events; the neutral
    prompt for an empty context), i.e. the agent's relevance with ``baseline_weight = 0``. The
    priors are not used; the values are log-probabilities, so distil it with ``pointwise=0``."""

    def teacher(context: PrivateContext, ad_texts: Sequence[str], priors: np.ndarray) -> np.ndarray:
        prompt = context_prompt(context.scored_events(), max_events)
        return backbone.loglik(prompt, [ad_continuation(t) for t in ad_texts])

    return teacher


def teacher_logits(
    teacher: Teacher,
    contexts: Sequence[PrivateContext],
    ad_texts: Sequence[str],
    priors: np.ndarray | None = None,
) -> np.ndarray:
    """(n_contexts, n_ads) float32 teacher logits of every ad for every context."""
    priors = _priors(priors, len(ad_texts))
    rows = [np.asarray(teacher(c, ad_texts, priors), np.float32) for c in contexts]
    out = np.stack(rows) if rows else np.zeros((0, len(ad_texts)), np.float32)
    if out.shape != (len(contexts), len(ad_texts)) or not np.isfinite(out).all():
        raise AgentError(
            f"the teacher must return ({len(ad_texts)},) finite logits per context, got "
            f"{out.shape} with finite={bool(np.isfinite(out).all())}"
        )
    return out


def _priors(priors: np.ndarray | None, n: int) -> np.ndarray:
    p = np.zeros(n, np.float32) if priors is None else np.asarray(priors, np.float32)
    if p.shape != (n,) or not np.isfinite(p).all():
        raise AgentError(f"priors must be ({n},) finite numbers, got shape {p.shape}")
    return p


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of :func:`distill` (a student of ``buckets x dim``, Adam over the contexts).

    ``temperature`` > 0 softens both score lists; ``pointwise`` >= 0 weighs the BCE term that
    calibrates the student's CTR; ``epochs`` passes over the contexts in batches of
    ``batch_size``; ``lr`` Adam's learning rate.
    """

    buckets: int = 4096
    dim: int = 32
    temperature: float = 2.0
    pointwise: float = 1.0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.02

    def __post_init__(self) -> None:
        for name in ("buckets", "dim", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise AgentError(f"{name} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise AgentError(f"temperature must be finite and > 0, got {self.temperature}")
        if not (math.isfinite(self.pointwise) and self.pointwise >= 0):
            raise AgentError(f"pointwise must be finite and >= 0, got {self.pointwise}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AgentError(f"lr must be finite and > 0, got {self.lr}")


@dataclass(frozen=True)
class DistillResult:
    """The distilled ``student``, the mean loss of each epoch (or round that ran) and, from
    :func:`distill_federated`, each device's epsilon at the accountant's delta (0 for a device
    never chosen, ``inf`` for one whose update left without noise)."""

    student: Student
    losses: tuple[float, ...]
    epsilons: np.ndarray | None = None


class _Problem:
    """Torch tensors of a distillation set: the hashed n-grams of every text (candidates and
    context events), each context's events as (row, text, weight) triples, teacher logits.

    ``ad_texts`` is one candidate list shared by every context (``ads`` (n,), ``priors``
    (n,)) or, with ``per_context``, one list of m texts per context (``ads`` and ``priors``
    (n_contexts, m))."""

    def __init__(self, contexts, ad_texts, priors, targets, buckets, per_context=False):
        flat_ads = [t for ads in ad_texts for t in ads] if per_context else list(ad_texts)
        texts = dict.fromkeys(flat_ads)
        cols, weights, counts = [], [], []
        for ctx in contexts:
            events = ctx.scored_events()
            texts.update(dict.fromkeys(e.text for e in events))
            counts.append(len(events))
            cols += [e.text for e in events]
            weights += ctx.weights(events).tolist()
        index = {t: j for j, t in enumerate(texts)}
        grams = [ngram_ids(t, buckets) for t in texts]
        self.flat = torch.from_numpy(np.concatenate(grams))
        self.offsets = torch.from_numpy(np.cumsum([0] + [len(g) for g in grams[:-1]]))
        rows = [[index[t] for t in row] for row in ad_texts] if per_context else None
        self.ads = torch.tensor(rows or [index[t] for t in flat_ads], dtype=torch.long)
        self.starts = np.cumsum([0, *counts])  # context i's events: starts[i]:starts[i + 1]
        self.cols = torch.tensor([index[t] for t in cols], dtype=torch.long)
        self.weights = torch.tensor(weights, dtype=torch.float32)
        self.priors = torch.from_numpy(priors)
        self.targets = torch.from_numpy(targets)

    def scores(self, p: Mapping[str, torch.Tensor], batch: np.ndarray) -> torch.Tensor:
        """(len(batch), n_ads) student logits of the contexts ``batch`` under ``p``."""
        vec = torch.nn.functional.embedding_bag(
            self.flat, p["student.table"], self.offsets, mode="sum"
        )
        vec = vec / vec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        take = np.concatenate([np.arange(self.starts[c], self.starts[c + 1]) for c in batch])
        sizes = self.starts[batch + 1] - self.starts[batch]
        ctx = torch.nn.functional.embedding_bag(
            self.cols[take],
            vec,
            torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]])),
            mode="sum",
            per_sample_weights=self.weights[take],
        )
        ctx = ctx / ctx.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.ads.ndim == 1:  # one shared list: a single (b, d) x (d, n) product
            s, priors = ctx @ vec[self.ads].T, self.priors
        else:  # each context's own list: (b, d) . (b, m, d) -> (b, m)
            idx = torch.from_numpy(batch)
            s = torch.einsum("bd,bmd->bm", ctx, vec[self.ads[idx]])
            priors = self.priors[idx]
        return p["student.scale"] * s + p["student.prior"] * priors + p["student.bias"]

    def loss(self, p: dict[str, torch.Tensor], batch: np.ndarray, cfg: DistillConfig):
        """The distillation loss of the contexts ``batch`` under parameters ``p``."""
        s = self.scores(p, batch)
        t, tau = self.targets[torch.from_numpy(batch)], cfg.temperature
        kl = torch.nn.functional.kl_div(
            torch.log_softmax(s / tau, 1),
            torch.log_softmax(t / tau, 1),
            log_target=True,
            reduction="batchmean",
        )
        bce = torch.nn.functional.binary_cross_entropy_with_logits(s, torch.sigmoid(t))
        return tau**2 * kl + cfg.pointwise * bce


@contextlib.contextmanager
def _one_thread():
    """Torch on one thread inside the block (restored after): the student's tensors are small,
    and intra-op threads on a shared CPU cost ten times the arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(problem: _Problem, state, contexts: np.ndarray, cfg: DistillConfig, gen, epochs: int):
    """Adam over ``contexts`` (indices) for ``epochs`` passes; the new state and epoch losses."""
    with _one_thread():
        return _adam(problem, state, contexts, cfg, gen, epochs)


def _adam(problem: _Problem, state, contexts: np.ndarray, cfg: DistillConfig, gen, epochs: int):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in state.items()}
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr)
    losses = []
    for _ in range(epochs):
        order, total = gen.permutation(contexts), 0.0
        for lo in range(0, len(order), cfg.batch_size):
            batch = np.sort(order[lo : lo + cfg.batch_size])
            opt.zero_grad()
            loss = problem.loss(params, batch, cfg)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / max(len(order), 1))
    return {k: v.detach().numpy().copy() for k, v in params.items()}, losses


def _start(problem: _Problem, cfg: DistillConfig, init: Student | None, gen) -> dict:
    """The initial state: ``init``'s, or a random table with the bias at the teacher's mean."""
    if init is not None:
        if (init.buckets, init.dim) != (cfg.buckets, cfg.dim):
            raise AgentError(
                f"init is a {init.buckets} x {init.dim} student, the config asks for "
                f"{cfg.buckets} x {cfg.dim}"
            )
        return init.state()
    state = Student.initial(cfg.buckets, cfg.dim, gen).state()
    state["student.bias"][0] = float(problem.targets.mean()) if problem.targets.numel() else -4.0
    return state


def _prepare(teacher, contexts, ad_texts, priors, cfg):
    if len(ad_texts) < 2:
        raise AgentError(f"distillation needs at least 2 candidate ads, got {len(ad_texts)}")
    if len(contexts) < 1:
        raise AgentError("distillation needs at least one context")
    if not all(isinstance(c, PrivateContext) for c in contexts):
        raise AgentError("contexts must be PrivateContext instances")
    priors = _priors(priors, len(ad_texts))
    targets = teacher_logits(teacher, contexts, ad_texts, priors)
    return _Problem(contexts, list(ad_texts), priors, targets, cfg.buckets)


def distill(
    teacher: Teacher,
    contexts: Sequence[PrivateContext],
    ad_texts: Sequence[str],
    priors: np.ndarray | None = None,
    *,
    config: DistillConfig | None = None,
    init: Student | None = None,
    rng: RngLike = None,
) -> DistillResult:
    """Distil ``teacher`` into a :class:`Student` over ``contexts`` x ``ad_texts``.

    Args:
        teacher: ``(context, ad_texts, priors) -> (n,) logits``.
        contexts: public pseudo-contexts (:func:`public_contexts`) or the device's own.
        ad_texts: (n,) the candidate list of every context, n >= 2 (public texts).
        priors: (n,) the exchange's public prior of each ad (default 0).
        config: the student's size and the optimiser (default :class:`DistillConfig`).
        init: a student to start from (default: a random one seeded by ``rng``).
        rng: seed of the initial table and the batch order.

    Raises:
        AgentError: fewer than 2 ads or no context, bad priors, a teacher returning the wrong
        shape or non-finite logits, ``init`` of another size.
    """
    cfg = config or DistillConfig()
    return _solve(_prepare(teacher, contexts, ad_texts, priors, cfg), cfg, init, rng)


def _solve(problem: _Problem, cfg: DistillConfig, init: Student | None, rng: RngLike):
    """The student fitted to every context of ``problem`` (seeded by ``rng``)."""
    gen = np.random.default_rng(rng)
    state = _start(problem, cfg, init, gen)
    every = np.arange(len(problem.starts) - 1)
    state, losses = _fit(problem, state, every, cfg, gen, cfg.epochs)
    return DistillResult(Student(state), tuple(losses))


def distill_lists(
    teacher: Teacher,
    contexts: Sequence[PrivateContext],
    candidates: Sequence[Sequence[str]],
    priors: Sequence[np.ndarray] | None = None,
    *,
    config: DistillConfig | None = None,
    init: Student | None = None,
    rng: RngLike = None,
) -> DistillResult:
    """:func:`distill` with each context's own candidate list: context ``i`` is labelled by
    the teacher on ``candidates[i]`` only, and the listwise loss ranks within that list.

    For an expensive teacher (a causal LM's log-likelihood costs about linearly in candidate
    tokens) many contexts with short random lists cover far more of the catalogue than the
    same teacher calls spent on one shared list.

    Args:
        teacher: ``(context, ad_texts, priors) -> (m,) logits``.
        contexts: n public pseudo-contexts (:func:`public_contexts`) or the device's own.
        candidates: n lists of the same length m >= 2 (public texts), one per context.
        priors: n arrays (m,) of the ads' public priors (default 0).
        config, init, rng: as :func:`distill`.

    Raises:
        AgentError: as :func:`distill`; ``candidates`` (or ``priors``) not one list per
        context, or lists of different lengths or shorter than 2.

    Example:
        >>> ctxs = public_contexts(["a red dress", "red shoes", "coffee", "tea"], 2, 1, rng=0)
        >>> lists = [["a red dress", "coffee"], ["red shoes", "tea"]]
        >>> def teacher(c, ads, p):
        ...     return np.array([1.0 if "red" in a else 0.0 for a in ads])
        >>> cfg = DistillConfig(buckets=32, dim=4, epochs=2)
        >>> distill_lists(teacher, ctxs, lists, config=cfg, rng=0).student.dim
        4
    """
    cfg = config or DistillConfig()
    n = len(contexts)
    if n < 1 or not all(isinstance(c, PrivateContext) for c in contexts):
        raise AgentError("contexts must be at least one PrivateContext")
    lengths = {len(row) for row in candidates}
    if len(candidates) != n or len(lengths) != 1 or min(lengths) < 2:
        raise AgentError(
            f"candidates must be {n} lists (one per context) of one length >= 2, got "
            f"{len(candidates)} lists of lengths {sorted(lengths)}"
        )
    if priors is not None and len(priors) != n:
        raise AgentError(f"priors must be {n} arrays (one per context), got {len(priors)}")
    m = lengths.pop()
    pri = np.stack([_priors(None if priors is None else priors[i], m) for i in range(n)])
    targets = np.concatenate(
        [
            teacher_logits(teacher, [c], list(ads), pri[i])
            for i, (c, ads) in enumerate(zip(contexts, candidates, strict=True))
        ]
    )
    lists = [list(row) for row in candidates]
    problem = _Problem(contexts, lists, pri, targets, cfg.buckets, per_context=True)
    return _solve(problem, cfg, init, rng)


def average_students(states: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The element-wise mean of student states of one size (FedAvg with equal weights)."""
    if not states:
        raise AgentError("average_students needs at least one state")
    checked = [_check_state(s) for s in states]
    shapes = {s["student.table"].shape for s in checked}
    if len(shapes) > 1:
        raise AgentError(f"students of different sizes cannot be averaged: {sorted(shapes)}")
    return {k: np.mean([s[k] for s in checked], axis=0).astype(np.float32) for k in STATE_KEYS}


def distill_federated(
    teacher: Teacher,
    device_contexts: Sequence[PrivateContext],
    ad_texts: Sequence[str],
    priors: np.ndarray | None = None,
    *,
    rounds: int = 10,
    per_round: int = 32,
    config: DistillConfig | None = None,
    init: Student | None = None,
    public: Sequence[PrivateContext] = (),
    ensemble_epochs: int = 0,
    clipping_norm: float | None = None,
    noise_multiplier: float = 0.0,
    privacy: UserAccountant | None = None,
    device_ids: Sequence[int] | np.ndarray | None = None,
    rng: RngLike = None,
) -> DistillResult:
    """Each sampled device distils the global student on its own context for
    ``config.epochs`` local steps; the server averages the returned students (FedAvg) and,
    with ``public`` contexts and ``ensemble_epochs`` > 0, then distils the average towards the
    ensemble of the returned students on those public contexts (FedDF, Lin et al. 2020: the
    target of each public context is the mean of the students' logits, the loss that of
    :func:`distill`, ``ensemble_epochs`` passes starting from the average).

    A simulator shortcut: the devices' problems are built together, but each device's loss
    reads only its own context and the public ``ad_texts`` / ``priors``, and the server sees
    only student states and public texts. ``losses`` holds the mean local loss of each round.

    User-level DP (DP-FedAvg, as the market's adapter rounds): with ``clipping_norm`` C each
    device's update (its student minus the global one, all parameters together) is clipped to
    L2 norm C before it leaves, and the server adds N(0, (z C / m)^2) to the mean of the m
    replies (z = ``noise_multiplier``). Each round a device takes part in is one Gaussian
    mechanism with multiplier z for that user (no amplification by sampling is claimed),
    charged to ``privacy`` (the run's accountant; a device that cannot pay sits the round out)
    or to a fresh one; ``epsilons`` reports each device's total. Without noise an update is
    unbounded (``inf``). The FedDF step reads only the released students and public texts:
    post-processing, free in privacy.

    Args:
        public: public pseudo-contexts for the server's ensemble step
            (:func:`public_contexts`; no user's data), needed when ``ensemble_epochs`` > 0.
        ensemble_epochs: server distillation passes per round, >= 0 (0: plain FedAvg).
        clipping_norm: L2 bound of each device's update (``None``: not clipped).
        noise_multiplier: std of the server's noise / ``clipping_norm`` (needs a clipping norm).
        privacy: the accountant to charge (default: a fresh one with delta 1e-5).
        device_ids: each device's user id in ``privacy`` (default 0..n-1).

    Raises:
        AgentError: as :func:`distill`, ``rounds`` or ``per_round`` < 1, ``ensemble_epochs``
            < 0, ensemble epochs without public contexts, a clipping norm <= 0, a negative
            noise multiplier or noise without a clipping norm, ``device_ids`` not one id per
            device.
    """
    for name, value, low in (
        ("rounds", rounds, 1),
        ("per_round", per_round, 1),
        ("ensemble_epochs", ensemble_epochs, 0),
    ):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise AgentError(f"{name} must be an integer >= {low}, got {value!r}")
    if ensemble_epochs and not public:
        raise AgentError("ensemble_epochs > 0 needs public contexts (public_contexts(...))")
    if clipping_norm is not None and not (0 < clipping_norm < math.inf):
        raise AgentError(f"clipping_norm must be > 0 and finite (or None), got {clipping_norm}")
    if not (0 <= noise_multiplier < math.inf) or (noise_multiplier > 0 and clipping_norm is None):
        raise AgentError(
            f"noise_multiplier must be finite, >= 0, and > 0 only with a clipping_norm; got "
            f"{noise_multiplier} with clipping_norm={clipping_norm}"
        )
    ids = np.arange(len(device_contexts)) if device_ids is None else np.asarray(device_ids)
    if ids.shape != (len(device_contexts),):
        raise AgentError(f"device_ids must hold one id per device ({len(device_contexts)})")
    privacy = privacy or UserAccountant(max(1, len(device_contexts)))
    mechanism = gaussian(noise_multiplier, "student distillation")
    cfg = config or DistillConfig()
    gen = np.random.default_rng(rng)
    problem = _prepare(teacher, device_contexts, ad_texts, priors, cfg)
    server = (
        _Problem(public, list(ad_texts), problem.priors.numpy(), _NO_TARGETS, cfg.buckets)
        if ensemble_epochs
        else None
    )
    local = DistillConfig(**{**cfg.__dict__, "batch_size": 1})
    state, losses = _start(problem, cfg, init, gen), []
    if clipping_norm is not None:  # the server's noise: its own stream, seeded from the run's
        noise = torch.Generator().manual_seed(int(gen.integers(2**62)))
    for _ in range(rounds):
        chosen = gen.choice(len(device_contexts), min(per_round, len(device_contexts)), False)
        chosen = chosen[privacy.charge(ids[chosen], mechanism)]
        if not len(chosen):
            continue  # no chosen device could pay this round
        replies = [_fit(problem, state, np.array([d]), local, gen, cfg.epochs) for d in chosen]
        students = [r[0] for r in replies]
        if clipping_norm is None:
            state = average_students(students)
        else:
            state = _private_mean(state, students, clipping_norm, noise_multiplier, noise)
        if server is not None:
            server.targets = _ensemble_logits(server, students)
            state, _ = _fit(server, state, np.arange(len(public)), cfg, gen, ensemble_epochs)
        losses.append(float(np.mean([r[1][-1] for r in replies])))
    return DistillResult(Student(state), tuple(losses), privacy.epsilons(ids))


def _private_mean(
    start: Mapping[str, np.ndarray],
    students: Sequence[Mapping[str, np.ndarray]],
    clipping_norm: float,
    noise_multiplier: float,
    noise: torch.Generator,
) -> dict[str, np.ndarray]:
    """``start`` plus the mean of the students' updates, each clipped to L2 norm
    ``clipping_norm`` over all parameters, plus N(0, (noise_multiplier x clipping_norm /
    len(students))^2) per value: DP-SGD's private gradient
    (:func:`~agents.dp_sgd.private_gradient`) with each device's update as one example."""
    updates = {
        k: torch.from_numpy(np.stack([s[k] - start[k] for s in students])) for k in STATE_KEYS
    }
    step = private_gradient(
        updates,
        {k: torch.from_numpy(start[k]) for k in STATE_KEYS},
        max_grad_norm=clipping_norm,
        noise_multiplier=noise_multiplier,
        expected_batch_size=len(students),
        generator=noise,
    )
    return {k: start[k] + step[k].numpy() for k in STATE_KEYS}


_NO_TARGETS = np.zeros((0, 0), np.float32)  # the server's targets are set each round


def _ensemble_logits(problem: _Problem, states: Sequence[Mapping[str, np.ndarray]]):
    """(n_contexts, n_ads) mean of the students' logits on ``problem``'s contexts."""
    every = np.arange(len(problem.starts) - 1)
    with torch.no_grad(), _one_thread():
        total = sum(
            problem.scores({k: torch.from_numpy(v) for k, v in st.items()}, every) for st in states
        )
    return total / len(states)


def public_contexts(
    ad_texts: Sequence[str],
    n: int,
    size: int = 10,
    *,
    weights: np.ndarray | None = None,
    rng: RngLike = None,
) -> list[PrivateContext]:
    """``n`` pseudo-contexts of ``size`` ``view`` events each, drawn from the public
    ``ad_texts`` without replacement with probabilities proportional to ``weights`` (e.g.
    public popularity; default uniform), one hour apart: distillation data without any
    user's data."""
    if int(n) != n or n < 1 or int(size) != size or not 1 <= size <= len(ad_texts):
        raise AgentError(
            f"n must be >= 1 and size in [1, {len(ad_texts)}] (the ads), got {n}, {size}"
        )
    p = np.ones(len(ad_texts)) if weights is None else np.asarray(weights, float)
    if p.shape != (len(ad_texts),) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise AgentError(f"weights must be ({len(ad_texts)},) finite, >= 0, not all 0")
    if np.count_nonzero(p) < size:
        raise AgentError(f"weights must leave at least size={size} ads with weight > 0")
    gen, out = np.random.default_rng(rng), []
    for _ in range(n):
        ctx = PrivateContext()
        for h, j in enumerate(gen.choice(len(ad_texts), size, replace=False, p=p / p.sum())):
            ctx.add("view", ad_texts[int(j)], time=3600.0 * h)
        out.append(ctx)
    return out
