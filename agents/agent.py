"""The on-device agent: private context, own adapter + head, local auction, local DP training.

Many agents share one :class:`~agents.models.Backbone`; an agent holds only its adapter + head
state (fp32 arrays), its private context and small caches. Before it uses the model it swaps
its adapter in (a no-op when the active adapter has the same version).

Only three things leave an agent: the auction decision (winner id and per-click price), a
click report (optionally through randomized response), and a trained update (noised by
DP-SGD on the device, or clipped for the server's user-level noise). The explanation of a
decision (predicted CTR, event ids and their shares) stays on the device
(:attr:`Agent.last_explanation`, :meth:`Agent.audit`): fitted over a few hundred decisions,
those numbers give away the private context.

Example:
    >>> from agents.models import load_model
    >>> agent = Agent(load_model("tiny-encoder"))
    >>> _ = agent.context.add("view", "red dress", time=0.0)
    >>> ads = [Ad("a1", "a red dress for summer", 2.0), Ad("a2", "coffee beans", 1.0)]
    >>> agent.choose_ad(ads).winner in ("a1", "a2")
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

import auction

from . import privacy
from ._errors import AgentError, BudgetExhaustedError
from .context import Budget, Event, PrivateContext
from .distill import Student
from .explain_text import explain_in_words
from .loglik_scoring import (
    BASELINE_WEIGHT,
    CONTEXT_TOKENS,
    check_baseline_weight,
    check_context_tokens,
    explain_loglik,
    loglik_ctr,
    relevance,
)
from .lora import (
    activate,
    adapter_parameters,
    check_state,
    enable_lora,
    initial_adapter,
    state_nbytes,
    state_version,
)
from .models import Backbone
from .prompts import context_prompt, recent
from .scoring import (
    HEAD_KEYS,
    Explanation,
    context_vector,
    explain,
    initial_head,
    predict_ctr,
)
from .training import RngLike, plan, train

# Quality must be > 0 for the auction; float32 sigmoids of very negative logits round to 0.
_MIN_QUALITY = 1e-12
Scorer = Literal["embedding", "loglik", "student"]
SCORERS = ("embedding", "loglik", "student")
_RELEVANCE_LISTS = 4  # candidate lists whose log-likelihood relevances an agent keeps


@dataclass(frozen=True)
class Ad:
    """An ad candidate: id, text, per-click bid (>= 0), category, and the exchange's public
    prior of the ad (a feature such as the log of its past clicks over all users; 0 when
    unknown), weighted by the head's learned ``head.prior``."""

    ad_id: str
    text: str
    bid: float
    category: str = ""
    prior: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What ``choose_ad`` returns and what leaves the device: the winning ad id (None if no
    bid cleared the reserve) and its per-click price."""

    winner: str | None
    price: float


@dataclass(frozen=True)
class LocalUpdate:
    """A local training run, as federation sends it.

    ``delta`` is new minus old adapter + head state (fp32 arrays), ``nbytes`` its size,
    ``epsilon`` the privacy spent at ``delta_dp``.
    """

    delta: dict[str, np.ndarray]
    num_examples: int
    steps: int
    epsilon: float
    delta_dp: float
    nbytes: int


class Agent:
    """One user's agent on a shared backbone.

    Args:
        backbone: the shared model (LoRA is enabled on it with ``rank`` if it is not yet).
        context: the user's private context (a new empty one by default).
        state: adapter + head state to start from (default: the backbone's initial adapter and
            a cosine-similarity head).
        epsilon_budget: total epsilon this agent may spend on training (default unlimited).
        delta: delta of all its DP guarantees.
        rank: LoRA rank, if the backbone has no LoRA yet.
        scorer: ``"embedding"`` (default: the context vector and the linear head of
            :mod:`agents.scoring`) or ``"loglik"`` (a causal backbone's log-likelihood of each
            ad after a prompt from the context, :mod:`agents.loglik_scoring`) or ``"student"``
            (``student``'s CTR: a device-sized scorer distilled from a teacher such as the
            loglik scorer, :mod:`agents.distill`; the LM's ranking at a fraction of its cost,
            for agents that decide often; the backbone still words explanations).
        baseline_weight: the loglik scorer's ``w`` in ``ll(ad | context) - w ll(ad | neutral)``,
            in [0, 1] (default :data:`agents.loglik_scoring.BASELINE_WEIGHT` = 0, the plain
            log-likelihood; 1 is the PMI). Unused by the embedding scorer.
        context_tokens: the loglik scorer's ``k``: None (default
            :data:`agents.loglik_scoring.CONTEXT_TOKENS`) scores every token of each ad after
            the context prompt (exact); ``k`` scores its first ``k`` tokens after it and the
            rest after the neutral prompt (cached once per ad): at ``k = 1`` a new context
            costs one prompt run instead of every candidate's tokens, at some loss of ranking
            quality (:mod:`agents.loglik_scoring`). Unused by the embedding scorer.
        student: the :class:`agents.distill.Student` of ``scorer="student"`` (required there,
            refused elsewhere); shared, never written by the agent.
    """

    def __init__(
        self,
        backbone: Backbone,
        context: PrivateContext | None = None,
        *,
        state: Mapping[str, np.ndarray] | None = None,
        epsilon_budget: float = math.inf,
        delta: float = 1e-5,
        rank: int = 8,
        scorer: Scorer = "embedding",
        baseline_weight: float = BASELINE_WEIGHT,
        context_tokens: int | None = CONTEXT_TOKENS,
        student: Student | None = None,
    ) -> None:
        if not epsilon_budget > 0:
            raise AgentError(f"epsilon_budget must be > 0, got {epsilon_budget}")
        if scorer not in SCORERS:
            raise AgentError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        if scorer == "loglik":
            backbone.require_causal("scorer='loglik'", " (use scorer='embedding')")
        if (scorer == "student") != (student is not None):
            raise AgentError(
                "scorer='student' needs student= (an agents.distill.Student, e.g. distilled "
                "from the loglik scorer) and student= needs scorer='student'; got "
                f"scorer={scorer!r}, student={type(student).__name__}"
            )
        if student is not None and not isinstance(student, Student):
            raise AgentError(f"student must be an agents.distill.Student, got {type(student)}")
        self.scorer = scorer
        self.student = student
        self.baseline_weight = check_baseline_weight(baseline_weight)
        self.context_tokens = check_context_tokens(context_tokens)
        if backbone.lora is None:
            enable_lora(backbone, rank=rank)
        self.backbone = backbone
        self._context = context if context is not None else PrivateContext()
        # what explains the last choose_ad's winner, computed when first asked (on device)
        self._why: Callable[[], Explanation] | None = None
        self._winner_text = ""  # the last winner's ad text, for explain_in_words
        self._explanation: Explanation | None = None
        self.budget = Budget(float(epsilon_budget))
        self.delta = delta
        self._shapes = {n: tuple(p.shape) for n, p in adapter_parameters(backbone).items()}
        self._shapes.update({k: v.shape for k, v in initial_head(backbone.dim).items()})
        self._ctx_key: tuple[str, int] | None = None
        self._ctx: tuple[list[Event], np.ndarray, np.ndarray] = ([], np.zeros(0), np.zeros(0))
        self._prompt_key: tuple[str, int] | None = None
        self._prompt: tuple[list[Event], str] = ([], "")
        self._relevances: dict[tuple[str, ...], np.ndarray] = {}
        self._relevances_key: tuple[str, int] | None = None  # the prompt key they belong to
        self.load_state(
            state
            if state is not None
            else {**initial_adapter(backbone), **initial_head(backbone.dim)}
        )

    @property
    def last_explanation(self) -> Explanation | None:
        """Why the last :meth:`choose_ad` winner scored as it did (None: no winner yet, or
        none in the last call); computed on first access from that decision's inputs, so a
        decision nobody asks about costs nothing extra."""
        if self._explanation is None and self._why is not None:
            self._explanation = self._why()
        return self._explanation

    @property
    def context(self) -> PrivateContext:
        """The private context (local only)."""
        return self._context

    @property
    def version(self) -> str:
        """Content hash of the adapter: the key of cached embeddings."""
        return self._version

    @property
    def can_contribute(self) -> bool:
        """False once the agent's epsilon budget is spent: it stops sending updates."""
        return self.budget.remaining > 0

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the adapter + head state as fp32 arrays (what federation carries)."""
        return {k: v.copy() for k, v in self._state.items()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the adapter + head (e.g. with the aggregated global one).

        Agents on one backbone that load equal states share one read-only copy of it
        (``backbone.states``); the agent never writes into it (training makes a new state).
        """
        check_state(state, self._shapes)
        self._state, self._state_version = self.backbone.states.intern(state)
        self._adapter = {k: v for k, v in self._state.items() if k not in HEAD_KEYS}
        self._version = state_version(self._adapter)

    @property
    def state_version(self) -> str:
        """Content hash of the whole adapter + head state (equal states: one shared copy)."""
        return self._state_version

    @property
    def nbytes(self) -> int:
        """Bytes of the adapter + head state (shared with agents holding the same version:
        ``backbone.states.nbytes`` counts each distinct state once)."""
        return state_nbytes(self._state)

    def _context_parts(self) -> tuple[list[Event], np.ndarray, np.ndarray]:
        """Scored events, their weights (m,) and the context vector (d,).

        Recomputed when the context or the adapter changed (embeddings come from the
        backbone's cache, or the student's, so only new event texts are embedded). The events'
        (m, d) embeddings are not kept: an explanation reads them again from the cache.
        """
        key = (self._version, self._context.version)
        if key != self._ctx_key:
            events = self._context.scored_events()
            emb = self._embed([e.text for e in events], self._adapter, self._version)
            weights = self._context.weights(events)
            self._ctx = (events, weights, context_vector(emb, weights))
            self._ctx_key = key
        return self._ctx

    def _prompt_parts(self) -> tuple[list[Event], str]:
        """The events the scoring prompt names (newest first) and the prompt, recomputed only
        when the context changed (the backbone keys its caches on the prompt and version)."""
        key = (self._version, self._context.version)
        if key != self._prompt_key:
            events = recent(self._context.scored_events())
            self._prompt = (events, context_prompt(events))
            self._prompt_key = key
        return self._prompt

    def _loglik_ctr(self, texts: list[str], priors: np.ndarray | float) -> np.ndarray:
        """(n,) CTRs of ``texts`` by the log-likelihood scorer.

        The relevances of the last few candidate lists are kept per prompt (cleared when the
        prompt or adapter changes): a repeated list is one lookup, no continuation is rebuilt.
        """
        _, prompt = self._prompt_parts()
        if self._relevances_key != self._prompt_key:
            self._relevances, self._relevances_key = {}, self._prompt_key
        rel = self._relevances.get(tuple(texts))
        if rel is None:
            activate(self.backbone, self._adapter, self._version)
            rel = self._relevances[tuple(texts)] = relevance(
                self.backbone, prompt, texts, self.baseline_weight, self.context_tokens
            )
            if len(self._relevances) > _RELEVANCE_LISTS:
                del self._relevances[next(iter(self._relevances))]
        return loglik_ctr(rel, self._state, priors)

    def predict_ctr(self, ad_texts: Sequence[str], priors: np.ndarray | float = 0.0) -> np.ndarray:
        """(n,) predicted click probability of each ad text for this user.

        ``priors``: (n,) or scalar, the exchange's prior of each ad (see :class:`Ad`).
        """
        if self.scorer == "loglik":
            return self._loglik_ctr(list(ad_texts), priors)
        _, _, cvec = self._context_parts()
        ads = self._embed(list(ad_texts), self._adapter, self._version)
        head = self._state if self.student is None else self.student.head
        return predict_ctr(cvec, ads, head, priors)

    def choose_ad(
        self,
        candidates: Sequence[Ad],
        *,
        reserve: float = 0.0,
        mechanism: str = "second_price",
        rng: RngLike = None,
    ) -> Decision:
        """Score ``candidates`` and run the auction locally with quality = predicted CTR.

        Returns only the winner and its per-click price; the context, the scores, the bids
        and the explanation of the winner's score (:attr:`last_explanation`) stay here.
        """
        if len(candidates) == 0:
            raise AgentError("candidates must hold at least one Ad")
        if not all(isinstance(c, Ad) for c in candidates):
            raise AgentError("candidates must be Ad instances")
        # float64 priors make the CTR float64, as ``predict_ctr(texts)`` with a scalar prior
        # computes it: the market's batch then ranks and prices on the very same quality.
        n = len(candidates)
        priors = np.fromiter((c.prior for c in candidates), np.float64, count=n)
        ctr, bind = self._score(candidates, priors)
        outcome = auction.run_auction(
            np.fromiter((c.bid for c in candidates), np.float64, count=n),
            mechanism=mechanism,
            reserve=reserve,
            quality=np.maximum(ctr, _MIN_QUALITY),
            rng=rng,
        )
        self._why, self._explanation, self._winner_text = None, None, ""
        if len(outcome.winners) == 0:
            return Decision(None, 0.0)
        w = int(outcome.winners[0])
        self._why, self._winner_text = bind(w), candidates[w].text
        return Decision(candidates[w].ad_id, float(outcome.prices[0]))

    def _score(
        self, candidates: Sequence[Ad], priors: np.ndarray
    ) -> tuple[np.ndarray, Callable[[int], Callable[[], Explanation]]]:
        """(n,) CTRs of ``candidates`` and ``bind``: ``bind(w)`` keeps what explains candidate
        ``w``'s score (only that candidate's row: an agent keeps no candidate matrix between
        decisions) and returns the function computing it when the explanation is read. The
        state dict, the context parts and the prompt are replaced, never changed in place,
        so the function may run later."""
        state, adapter, version = self._state, self._adapter, self._version
        if self.scorer == "loglik":
            events, _ = self._prompt_parts()
            texts = [c.text for c in candidates]
            ctr = self._loglik_ctr(texts, priors)

            def bind_loglik(w: int) -> Callable[[], Explanation]:
                text, prior = texts[w], priors[w]

                def why() -> Explanation:
                    activate(self.backbone, adapter, version)  # the decision's adapter
                    return explain_loglik(
                        self.backbone,
                        events,
                        text,
                        state,
                        prior=prior,
                        baseline_weight=self.baseline_weight,
                        context_tokens=self.context_tokens,
                    )

                return why

            return ctr, bind_loglik
        # the embedding scorer, or the student: the same form (its vectors, its head)
        events, weights, cvec = self._context_parts()
        head = state if self.student is None else self.student.head
        ads = self._embed([c.text for c in candidates], adapter, version)

        def bind_embedding(w: int) -> Callable[[], Explanation]:
            ad, prior = ads[w].copy(), priors[w]

            def why() -> Explanation:
                emb = self._embed([e.text for e in events], adapter, version)
                ids = [e.event_id for e in events]
                return explain(emb, weights, ids, ad, head, prior=prior)

            return why

        return predict_ctr(cvec, ads, head, priors), bind_embedding

    def _embed(
        self, texts: list[str], adapter: Mapping[str, np.ndarray], version: str
    ) -> np.ndarray:
        """(n, d) unit vectors of ``texts`` for the embedding form: the student's or, for the
        embedding scorer, the backbone's under ``adapter`` (activated first: other agents
        share the backbone)."""
        if self.student is not None:
            return self.student.embed(texts)
        activate(self.backbone, adapter, version)
        return self.backbone.embed(texts)

    def audit(self, explanation: Explanation | None = None) -> list[Event]:
        """The context events an explanation points to (default: the last decision's), for
        the user, on the device."""
        explanation = explanation if explanation is not None else self.last_explanation
        if explanation is None:
            return []
        by_id = {e.event_id: e for e in self._context.events}
        return [by_id[i] for i in explanation.event_ids if i in by_id]

    def explain_in_words(
        self, explanation: Explanation | None = None, *, backbone_for_text: Backbone | None = None
    ) -> str:
        """A sentence for the user naming the events behind a decision (default: the last
        one's), worded by ``backbone_for_text`` (a causal LM) or a template; see
        :mod:`agents.explain_text`. On the device only: it goes to the caller, never into a
        :class:`Decision` or a message."""
        last = explanation is None or explanation is self.last_explanation
        return explain_in_words(
            self.audit(explanation),
            self._context.events,
            self._winner_text if last else "",
            backbone_for_text=backbone_for_text,
        )

    def report_click(
        self, clicked: int, epsilon_rr: float | None = None, rng: RngLike = None
    ) -> int:
        """The click to send: as is, or through ``epsilon_rr``-randomized response."""
        if clicked not in (0, 1):
            raise AgentError(f"clicked must be 0 or 1, got {clicked}")
        if epsilon_rr is None:
            return int(clicked)
        return int(privacy.randomized_response(np.array([clicked]), epsilon_rr, rng)[0])

    def train_local(
        self,
        *,
        epochs: float = 1.0,
        batch_size: int = 16,
        lr: float = 5e-3,
        max_grad_norm: float = 1.0,
        noise_multiplier: float = 1.0,
        target_epsilon: float | None = None,
        accountant: str = "rdp",
        rng: RngLike = None,
    ) -> LocalUpdate:
        """Fine-tune adapter + head on the local click log with DP-SGD, then adopt the result.

        Rows of a sensitive domain are used only if that domain's budget can pay the run's
        epsilon, and then it pays; the agent's own budget always pays. The spent epsilons add
        up across runs (basic composition).

        Raises:
            BudgetExhaustedError: the run would cost more than the agent's remaining budget.
            AgentError: a ``scorer="loglik"`` or ``"student"`` agent (this loop fits the
                embedding scorer's objective, which would not tune what those rank by).
        """
        if self.scorer == "loglik":
            raise AgentError(
                "train_local fits the embedding scorer; a scorer='loglik' agent is tuned by "
                "causal-LM fine-tuning (issue 19 item 2), not by this loop"
            )
        if self.scorer == "student":
            raise AgentError(
                "train_local fits the embedding scorer; a scorer='student' agent's student is "
                "tuned by distillation (agents.distill: distill, distill_federated)"
            )
        knobs = {
            "epochs": epochs,
            "batch_size": batch_size,
            "max_grad_norm": max_grad_norm,
            "noise_multiplier": noise_multiplier,
            "target_epsilon": target_epsilon,
            "delta": self.delta,
            "accountant": accountant,
        }
        budgets, rows = self._context.budgets, list(self._context.clicks)
        while True:  # drop rows of domains that cannot pay; the set only shrinks
            cost = plan(len(rows), **knobs).epsilon
            kept = [
                r
                for r in rows
                if r.category not in budgets or budgets[r.category].remaining >= cost
            ]
            if len(kept) == len(rows):
                break
            rows = kept
        if cost > self.budget.remaining:
            raise BudgetExhaustedError(
                f"training would spend epsilon {cost:.3g}, the agent has "
                f"{self.budget.remaining:.3g} left: it stops contributing"
            )
        _, _, cvec = self._context_parts()
        fit = train(
            self.backbone,
            self._state,
            np.repeat(cvec[None], len(rows), 0),
            [r.text for r in rows],
            np.array([r.clicked for r in rows], dtype=int),
            priors=np.array([r.prior for r in rows], dtype=np.float32),
            lr=lr,
            rng=rng,
            **knobs,
        )
        self.budget.spend(fit.plan.epsilon, "agent budget")
        for domain in {r.category for r in rows} & set(self._context.budgets):
            self._context.budgets[domain].spend(fit.plan.epsilon, f"sensitive domain {domain!r}")
        delta = {k: fit.state[k] - self._state[k] for k in self._state}
        self.load_state(fit.state)
        return LocalUpdate(
            delta, len(rows), fit.plan.steps, fit.plan.epsilon, self.delta, state_nbytes(delta)
        )
