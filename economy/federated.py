"""Federated rounds of the market's LM agents through Flower, valued and paid in tokens.

Every ``federated.every`` steps, inside the economy's ServerApp (:mod:`economy.flower_app`):

1. the exchange picks ``clients_per_round`` devices (seeded) among those it served (they have
   a click log) whose privacy budget can pay one more round (the run's per-user accountant,
   shared with the trend gossip);
2. the simulator hands each chosen device its own observations through the device's store
   (:func:`federation.device_task.write_device`: node-local storage, never a Flower message);
3. one round through the federated-round core (:func:`federation.rounds.train_round`) over the
   Flower grid: each device's ClientApp (``task = "device"``) fine-tunes the global LoRA
   adapter + head on its own click log and clips its whole update to ``clipping_norm``
   (Flower's ``fixedclipping_mod``) before it leaves; the reply holds the arrays and
   ``num-examples = 1`` (nothing about the log's size); the configured Flower strategy inside
   Flower's client-side DP wrapper averages the validated replies and adds Gaussian noise
   ``noise_multiplier x clipping_norm / replies`` (DP-FedAvg, user-level DP);
4. :class:`incentives.RoundPayer` values the accepted updates on the exchange's public
   catalogue (:class:`CatalogueUtility`) and pays each device (``user-<u>``) tokens out of
   ``revenue_share`` of the auction revenue since the previous round, into the run's ledger
   (``reward_pool = "revenue"``: the whole share whenever the round's value is positive,
   split among the devices of positive value);
5. every market agent scores with the new global adapter + head from the next step; with
   ``adopt = "if_better"`` only if the noised aggregate scores at least as well as the old
   one on the public catalogue (:class:`CatalogueUtility`): post-processing of a DP release
   on public data, so free in privacy, and it keeps a round whose noise outweighs its signal
   from degrading every agent.

Every round leaves a record (:meth:`FederatedAgents.round`, ``summary.json`` ->
``federated.round_records``): the devices chosen and accepted, each one's value, tokens and
epsilon so far (what it was paid next to what taking part cost it), the valuation's method,
utility evaluations, the pool, and why nothing was paid when nothing was.

Each round a user's update is aggregated in is one Gaussian mechanism with multiplier
``noise_multiplier`` for that user, charged to the run's :class:`agents.UserAccountant` (PLD,
composed with the trend shares; no amplification by sampling is claimed: the exchange picks
devices by data and budget). ``noise_multiplier = 0`` sends updates without noise: ``inf``.

What this does not cover: the server sees each clipped update before the noise (the trusted
aggregator of central DP; SecAgg would remove that), and token payments are computed from the
individual updates and are not noised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.accountant import UserAccountant, gaussian
from incentives import Ledger, MaxEvaluations, RewardPolicy, RoundPayer, gini

from .config import ExperimentConfig
from .progress import phase

log = logging.getLogger(__name__)


class CatalogueUtility:
    """Public validation of an adapter + head on the exchange's own catalogue.

    One panel profile per ad category: a user whose context is the catalogue's ads of that
    category; the ads of its category should be clicked, the others not. The utility is the
    balanced mean log-likelihood of those labels under the agents' CTR model (higher is
    better). It uses only public data (ad texts and categories), so the server can value
    updates without any user's data.

    Args:
        backbone: the agents' shared backbone (LoRA enabled).
        ads: (n,) ad texts; categories: (n,) their category names.
    """

    def __init__(self, backbone: Any, ads: Sequence[str], categories: Sequence[str]) -> None:
        self.backbone, self.ads = backbone, list(ads)
        names = np.asarray(categories)
        self.masks = [names == c for c in dict.fromkeys(categories) if (names == c).sum() > 0]
        self.masks = [m for m in self.masks if m.sum() < len(names)]  # both labels present

    def __call__(self, state: Mapping[str, np.ndarray]) -> float:
        from agents.lora import activate, state_version
        from agents.scoring import HEAD_KEYS, context_vector, predict_ctr

        if not self.masks:
            return 0.0
        state = {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
        adapter = {k: v for k, v in state.items() if k not in HEAD_KEYS}
        activate(self.backbone, adapter, state_version(adapter))
        emb = self.backbone.embed(self.ads)
        total = 0.0
        for mask in self.masks:
            cvec = context_vector(emb[mask], np.ones(int(mask.sum())))
            p = np.clip(predict_ctr(cvec, emb, state).astype(float), 1e-9, 1 - 1e-9)
            total += 0.5 * np.log(p[mask]).mean() + 0.5 * np.log(1 - p[~mask]).mean()
        return float(total / len(self.masks))


@dataclass
class FlowerLink:
    """The running federation as the exchange sees it: the grid and which node is which
    device (asked once per run with a ``query`` message: each node answers its
    ``partition-id``, the device's public id)."""

    grid: Any
    node_of: dict[int, int]  # device (user) -> node id
    store: Path
    stop: threading.Event | None = None  # set: end the round now (Ctrl-C)

    @classmethod
    def connect(cls, grid: Any, devices: int, store: Path, timeout: float = 120.0) -> FlowerLink:
        """Wait for ``devices`` nodes, learn their ids; FederationError if they differ."""
        from flwr.app import ConfigRecord, Message, MessageType, RecordDict

        from federation import FederationError
        from federation.rounds import wait_for_nodes

        nodes = wait_for_nodes(grid, devices, timeout)
        ask = RecordDict({"config": ConfigRecord()})
        asks = [Message(ask, dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
        node_of: dict[int, int] = {}
        for reply in grid.send_and_receive(asks, timeout=timeout):
            if not reply.has_content():
                continue
            ids = next(iter(reply.content.metric_records.values()))
            if int(ids["num-partitions"]) != devices:
                raise FederationError(
                    f"the federation has {int(ids['num-partitions'])} devices, the market "
                    f"{devices} users: set market.users to the number of SuperNodes"
                )
            node_of[int(ids["partition-id"])] = int(reply.metadata.src_node_id)
        missing = sorted(set(range(devices)) - set(node_of))
        if missing:
            raise FederationError(f"no node answered for devices {missing[:10]}")
        return cls(grid, node_of, Path(store))


class FederatedAgents:
    """Rounds and payments of the market's LM agents, charged to the users' accountant
    (module doc).

    Args:
        cfg: the run's config.
        lm: the market's LM agents (``economy.lm_agents.LMScorer``).
        ledger: where token rewards are recorded.
        rng: the component's random stream (device sampling, valuation seeds).
        privacy: the run's per-user accountant (``market.users`` users).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        lm: Any,
        ledger: Ledger,
        rng: np.random.Generator,
        privacy: UserAccountant,
    ) -> None:
        f = cfg.federated
        self.cfg, self.lm, self.rng, self.privacy = cfg, lm, rng, privacy
        self.mechanism = gaussian(f.noise_multiplier, "federated round (DP-FedAvg)")
        self.tokens = np.zeros(len(lm.agents))  # tokens paid to each device so far
        self.rounds, self.pending_revenue, self.adopted = 0, 0.0, 0
        self.ledger = ledger
        self.policy = RewardPolicy(revenue_share=f.revenue_share, pool=f.reward_pool)
        self.records: list[dict[str, Any]] = []  # one per round (module doc)
        self.seed = int(rng.integers(2**31))  # of the valuations: round r uses [seed, r]
        self.payer = self._payer()

    def _payer(self) -> RoundPayer:
        f = self.cfg.federated
        self.utility = CatalogueUtility(self.lm.backbone, self.lm.ads, self.lm.ad_category)
        return RoundPayer(
            self.utility,
            self.ledger,
            self.policy,
            method=f.valuation,
            seed=self.seed,
            options={"stopping": MaxEvaluations(f.valuation_budget)},
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["payer"], state["utility"]  # they hold the model: rebuilt on restore
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.payer = self._payer()

    def client_config(self, store: Path) -> dict[str, Any]:
        """What every device receives with the global arrays (the ``config`` record)."""
        f, a = self.cfg.federated, self.cfg.agents
        return {
            "task": "device",
            # user-level DP: the node clips its whole update, the server noises the average
            "dp": "client-fixed" if f.noise_multiplier > 0 else "none",
            "noise-multiplier": f.noise_multiplier,
            "clipping-norm": f.clipping_norm,
            "dp-delta": self.cfg.privacy.delta,
            "model": a.model,
            "lora-rank": a.lora_rank,
            "max-length": a.max_length,
            "batch-size": f.batch_size,
            "local-epochs": f.local_epochs,
            "agent-lr": f.lr,
            "dp-sgd-clipping-norm": f.max_grad_norm,
            "dp-sgd-noise-multiplier": 0.0,  # no example-level noise: the user is the unit
            "seed": self.cfg.seed,
            "device-store": str(store),
        }

    def choose(self) -> list[int]:
        """This round's devices: served (a click log), with budget left for one more round;
        seeded, sorted."""
        f = self.cfg.federated
        served = [u for u, agent in enumerate(self.lm.agents) if agent.context.clicks]
        ok = self.privacy.allowed(served, self.mechanism)
        ready = [u for u, fits in zip(served, ok, strict=True) if fits]
        if not ready:
            return []
        k = min(f.clients_per_round, len(ready))
        return sorted(int(u) for u in self.rng.choice(ready, size=k, replace=False))

    def round(self, link: FlowerLink, step: int) -> dict[str, float]:
        """One federated round now; returns its metrics (clients, tokens, evaluations) and
        appends its record to :attr:`records` (module doc)."""
        from federation import make_strategy
        from federation.device_task import write_device
        from federation.rounds import train_round

        chosen = self.choose()
        f = self.cfg.federated
        record: dict[str, Any] = {"round": self.rounds + 1, "step": step, "chosen": chosen}
        if not chosen:
            served = any(agent.context.clicks for agent in self.lm.agents)
            record["zero_pay_reason"] = (
                "no device ready: every served device's privacy budget is spent"
                if served
                else "no device ready: none has a click log yet"
            )
            self.records.append(record)
            return {"fed_clients": 0.0, "fed_tokens": 0.0, "fed_evaluations": 0.0}
        phase("federated round %d: training %d devices", self.rounds + 1, len(chosen))
        spent = self.privacy.epsilons(chosen)
        for u, eps in zip(chosen, spent, strict=True):
            write_device(
                link.store,
                u,
                self.lm.agents[u].context,
                budget_total=self.privacy.budget,
                budget_spent=float(eps),
            )
        user_of = {link.node_of[u]: u for u in chosen}
        revenue, self.pending_revenue = self.pending_revenue, 0.0
        paid: dict[str, Any] = {}

        def account(_r: int, _start: Any, updates: Sequence[Any], _new: Any) -> dict[str, float]:
            # every user whose update went into the noised average (all were allowed)
            self.privacy.charge([user_of[up.node_id] for up in updates], self.mechanism)
            return {}

        def pay(r: int, start: Any, updates: Sequence[Any], _new: Any) -> dict[str, float]:
            if not updates:
                return {}
            users = [user_of[up.node_id] for up in updates]
            phase("federated round %d: valuing %d updates (%s)", r, len(users), f.valuation)
            out = self.payer.pay(
                r,
                start,
                [f"user-{u}" for u in users],
                [up.delta(start) for up in updates],
                [up.num_examples for up in updates],
                revenue,
            )
            values = np.zeros(len(users))  # each device's value: its player's (module doc)
            for value, members in zip(out.valuation.values, out.groups, strict=True):
                values[list(members)] = value
            tokens = np.round(out.tokens, 6)
            np.add.at(self.tokens, users, tokens)
            paid.update(
                users=users,
                values=values,
                tokens=tokens,
                evals=int(out.valuation.n_evaluations),
                method=out.valuation.method,
            )
            return {}

        self.rounds += 1
        start = self.lm.agents[0].state()  # every agent holds the global state
        result = train_round(
            link.grid,
            make_strategy(
                f.strategy,
                num_nodes=len(chosen),
                dp="client-fixed" if f.noise_multiplier > 0 else "none",
                noise_multiplier=f.noise_multiplier,
                clipping_norm=f.clipping_norm,
            ),
            start,
            self.rounds,
            self.client_config(link.store),
            nodes=[link.node_of[u] for u in chosen],
            hooks=[account, pay],
            stop=link.stop,
        )
        for node, why in result.rejected.items():
            log.warning("round %d: device %d's reply refused: %s", self.rounds, user_of[node], why)
        phase("federated round %d: scoring the aggregate on the public catalogue", self.rounds)
        before = self.utility(start)
        after = self.utility(result.arrays) if result.updates else before
        adopted = bool(result.updates) and (f.adopt == "always" or after >= before)
        if adopted:
            self.lm.adopt(result.arrays)
        self.adopted += int(adopted)
        self.records.append(
            self._record(record, result, user_of, paid, revenue, adopted, before, after)
        )
        total = float(paid["tokens"].sum()) if paid else 0.0
        return {
            "fed_clients": float(len(result.updates)),
            "fed_adopted": float(adopted),
            "fed_tokens": total,
            "fed_evaluations": float(paid.get("evals", 0)),
        }

    def _record(
        self,
        record: dict[str, Any],
        result: Any,
        user_of: dict[int, int],
        paid: dict[str, Any],
        revenue: float,
        adopted: bool,
        before: float,
        after: float,
    ) -> dict[str, Any]:
        """The round's record (module doc): who took part, what each was paid next to its
        value and epsilon, what valuing cost, and why nothing was paid when nothing was."""
        pool = self.policy.revenue_share * revenue
        record.update(
            accepted=[user_of[up.node_id] for up in result.updates],
            refused={str(user_of[n]): why for n, why in result.rejected.items()},
            adopted=adopted,
            utility_before=before,
            utility_after=after,
            revenue=revenue,
            pool=pool,
            valuation={
                "method": paid.get("method", self.cfg.federated.valuation),
                "evaluations": paid.get("evals", 0),
            },
        )
        users = paid.get("users", [])
        eps = self.privacy.epsilons(users) if users else np.zeros(0)
        record["devices"] = [
            {"user": u, "value": float(v), "tokens": float(t), "epsilon": float(e)}
            for u, v, t, e in zip(
                users, paid.get("values", []), paid.get("tokens", []), eps, strict=True
            )
        ]
        record["paid"] = float(sum(d["tokens"] for d in record["devices"]))
        record["zero_pay_reason"] = None if record["paid"] > 0 else self._why_unpaid(paid, pool)
        return record

    def _why_unpaid(self, paid: dict[str, Any], pool: float) -> str:
        if not paid:
            return "no reply was accepted: nothing to value"
        if pool <= 0:
            return (
                "federated.revenue_share is 0"
                if self.policy.revenue_share == 0
                else "no auction revenue since the last round"
            )
        if not (paid["values"] > 0).any():
            return "no update had a positive value on the public catalogue"
        return "the priced value rounded to 0 tokens (reward_pool = 'value')"

    def summary(self) -> dict[str, Any]:
        """Tokens over the run and how they spread among those who took part (module doc):
        ``paid``; ``contributors`` (devices paid anything); ``participants`` (devices whose
        update was accepted in some round) and ``participation`` (their share of all users);
        ``gini_contributors`` (the Gini of the contributors' tokens: users never sampled do
        not count); ``pay_per_value`` (tokens per unit of positive contribution value, the
        catalogue log-likelihood gain); ``zero_pay_rounds``; the ledger's head; the rounds'
        records."""
        paid = self.tokens[self.tokens > 0]
        took_part = {u for r in self.records for u in r.get("accepted", [])}
        value = sum(max(d["value"], 0.0) for r in self.records for d in r.get("devices", []))
        seq, digest = self.ledger.head()
        return {
            "tokens": {
                "paid": float(self.tokens.sum()),
                "contributors": int(paid.size),
                "participants": len(took_part),
                "participation": len(took_part) / len(self.tokens),
                "gini_contributors": gini(paid) if paid.size else 0.0,
                "pay_per_value": float(self.tokens.sum()) / value if value > 0 else 0.0,
                "zero_pay_rounds": sum(1 for r in self.records if r.get("zero_pay_reason")),
                "pool": self.cfg.federated.reward_pool,
            },
            "ledger": {
                "head": f"{seq}:{digest}",
                "entries": seq,
                "verified": bool(self.ledger.verify().ok),
            },
            "round_records": self.records,
        }
