"""Experiment configuration: TOML files validated into typed objects.

Unknown keys and bad values raise :class:`ConfigError` naming the key (dotted path) and what is
allowed, before any work starts. Every section has defaults, so an empty file is a valid config
(the embedded defaults) and a file only overrides what it names.

Example:
    >>> cfg = parse_config({"seed": 7, "auction": {"mechanism": "gsp", "slot_ctrs": [1, 0.5]}})
    >>> cfg.auction.mechanism, cfg.seed
    ('gsp', 7)
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the key and the allowed values."""


ECHO_CHARS = 200  # at most this many characters of an offending value are echoed in an error
EXACT_MAX_CLIENTS = 12  # exact Shapley values cost 2^n utility evaluations a round: 4,096 here


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters (the rest counted), for echoing user input.

    Example:
        >>> clip("x" * 500, 5)
        'xxxxx... (500 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class _Section(BaseModel):
    """Strict types (``true`` is no number, ``"1"`` no integer) and finite floats: a key whose
    description says "inf allowed" opts in with ``allow_inf_nan=True`` and a bound that NaN
    fails."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class AuctionSection(_Section):
    """The exchange's mechanism, run on the device for every impression."""

    mechanism: Literal["second_price", "gsp", "vcg", "first_price"] = "second_price"
    slot_ctrs: list[float] = Field(default_factory=lambda: [1.0], min_length=1, max_length=20)
    reserve: float = Field(0.0, ge=0.0, le=1e6, description="per-click reserve price")

    @model_validator(mode="after")
    def _check_slots(self) -> AuctionSection:
        ctrs = self.slot_ctrs
        if any(not 0.0 < c <= 1.0 for c in ctrs):
            raise ValueError("slot_ctrs: each CTR must be in (0, 1]")
        if any(b > a for a, b in itertools.pairwise(ctrs)):
            raise ValueError("slot_ctrs: must be non-increasing (top slot first)")
        if self.mechanism in ("second_price", "first_price") and len(ctrs) > 1:
            raise ValueError(
                f"slot_ctrs: mechanism {self.mechanism!r} has one slot; use 'gsp' or 'vcg'"
            )
        return self


class TruthfulnessSection(_Section):
    """Settings of ``fedadagent auction``: random instances probed for profitable misreports."""

    bidders: int = Field(4, ge=1, le=64)
    instances: int = Field(200, ge=1, le=100_000)
    grid: int = Field(41, ge=3, le=1001, description="misreports per bidder: a grid on [0, 2v]")
    value_low: float = Field(0.0, ge=0.0, le=1e6)
    value_high: float = Field(1.0, gt=0.0, le=1e6)
    simulate_auctions: int = Field(100_000, ge=1, le=10_000_000)
    coalition: int = Field(
        1, ge=1, le=4, description="bidders deviating together (1: alone, 2+: bid rings)"
    )

    @model_validator(mode="after")
    def _check_values(self) -> TruthfulnessSection:
        if self.value_high <= self.value_low:
            raise ValueError("value_high: must be greater than value_low")
        if self.coalition > self.bidders:
            raise ValueError("coalition: must be at most bidders")
        return self


class MarketSection(_Section):
    """Size and length of the simulated market."""

    users: int = Field(200, ge=1, le=1_000_000)
    advertisers: int = Field(20, ge=1, le=10_000)
    categories: int = Field(8, ge=1, le=1_000)
    steps: int = Field(20, ge=1, le=100_000)
    impressions_per_user: int = Field(5, ge=1, le=1_000)
    base_ctr: float = Field(0.05, gt=0.0, le=1.0, description="CTR of a perfectly matched ad")


class SocialSection(_Section):
    """The social graph and the gossip of interest trends between devices."""

    communities: int = Field(4, ge=1, le=1_000, description="user communities (SBM blocks)")
    avg_degree: float = Field(8.0, gt=0.0, le=1_000.0)
    homophily: float = Field(
        0.9, ge=0.0, le=1.0, description="share of a user's ties inside its community"
    )
    taste_concentration: float = Field(
        5.0,
        gt=0.0,
        le=1e6,  # Dirichlet weights beyond ~1e300 overflow to NaN preferences
        description="how closely users follow their community's taste",
    )
    gossip_rounds: int = Field(2, ge=0, le=1_000, description="trend gossip rounds per share")
    trend_every: int = Field(
        5, ge=1, le=100_000, description="steps between trend shares (each costs trend_epsilon)"
    )
    trend_private: bool = Field(
        True, description="each user releases its summary with Laplace noise (local DP)"
    )
    trend_epsilon: float = Field(
        0.5, gt=0.0, le=1e6, description="local-DP epsilon of one share of a user's summary"
    )
    trend_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of the friends' trend in the device's prior"
    )


class PrivacySection(_Section):
    """Each user's privacy for the whole run: one accountant per user composes every mechanism
    that touches it (trend shares, federated rounds) with PLD; a user whose next release would
    exceed the budget stops taking part, and the run records the refusal."""

    epsilon_budget: float = Field(
        8.0,
        gt=0.0,
        allow_inf_nan=True,
        description="epsilon each user may spend over the whole run; inf allowed",
    )
    delta: float = Field(1e-5, gt=0.0, lt=0.01, description="delta of every user's epsilon")


class FederatedSection(_Section):
    """Federated rounds of the LM agents through Flower with user-level DP (DP-FedAvg): each
    device trains on its own click log, its whole update is clipped to ``clipping_norm`` on
    the device, and the server adds Gaussian noise ``noise_multiplier x clipping_norm`` to
    the sum of the updates; valued and paid in tokens (needs ``agents.scorer = 'lm'``).
    """

    every: int = Field(5, ge=0, le=100_000, description="steps between rounds (0: off)")
    engine: Literal["simulation", "deployment"] = Field(
        "simulation",
        description="Flower's Simulation Engine in this process (Ray) or a SuperLink's "
        "Deployment Engine (the run is submitted with `flwr run`)",
    )
    federation: str = Field(
        "local-deployment",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="deployment: the Flower federation (in $FLWR_HOME/config.toml) to submit to",
    )
    ray_address: str = Field(
        "", description="simulation: a Ray cluster to run the devices on ('auto', 'host:port')"
    )
    client_cpus: float = Field(1.0, gt=0.0, le=64.0, description="CPUs per device process")
    strategy: Literal[
        "fedavg", "fedadam", "fedyogi", "fedavgm", "krum", "multikrum", "trimmed_avg", "median"
    ] = "fedavg"
    clients_per_round: int = Field(
        8, ge=1, le=100_000, description="devices trained per round (fewer if fewer are ready)"
    )
    local_epochs: int = Field(1, ge=1, le=100, description="local epochs over the click log")
    batch_size: int = Field(16, ge=1, le=4_096, description="expected local batch size")
    lr: float = Field(5e-3, gt=0.0, le=1.0)
    max_grad_norm: float = Field(
        1.0, gt=0.0, le=1e6, description="per-example gradient clipping in local training"
    )
    clipping_norm: float = Field(
        1.0, gt=0.0, le=1e6, description="L2 norm each device's whole update is clipped to"
    )
    noise_multiplier: float = Field(
        1.0, ge=0.0, le=100.0, description="server noise std / clipping_norm (0: no user DP)"
    )
    adopt: Literal["if_better", "always"] = Field(
        "if_better",
        description="take a round's noised aggregate always, or only if it scores at least as "
        "well on the public catalogue (post-processing: no privacy cost)",
    )
    valuation: Literal["auto", "exact", "gtg", "svarm-cv", "tmc", "loo"] = Field(
        "auto",
        description="Shapley method; 'auto' picks by the round's devices and valuation_budget "
        "(exact if 2^n fits, svarm-cv for n <= 16, else gtg: incentives.auto_method)",
    )
    valuation_budget: int = Field(
        32, ge=2, le=100_000, description="utility evaluations a round (each one catalogue pass)"
    )
    revenue_share: float = Field(
        0.05, ge=0.0, le=1.0, description="of the auction revenue since the last round"
    )
    reward_pool: Literal["revenue", "value"] = Field(
        "revenue",
        description="a round pays its whole revenue_share when its updates' value is positive "
        "('revenue'), or prices the value (tokens = sqrt of the gain, capped: 'value')",
    )

    @model_validator(mode="after")
    def _check_exact(self) -> FederatedSection:
        n = self.clients_per_round
        if self.every and self.valuation == "exact" and n > EXACT_MAX_CLIENTS:
            raise ValueError(
                f"valuation: 'exact' with clients_per_round = {n} evaluates 2^{n} coalitions a "
                f"round (allowed with at most {EXACT_MAX_CLIENTS} clients); use 'gtg', "
                "'svarm-cv' or 'tmc' (sampled within valuation_budget) or fewer clients"
            )
        return self


class AdvertiserSection(_Section):
    """How advertisers value clicks, what they can spend and how they bid."""

    value_mean: float = Field(1.0, gt=0.0, le=1e6, description="mean value per click")
    value_sigma: float = Field(0.5, ge=0.0, le=3.0, description="lognormal sigma")
    budget_per_step: float = Field(
        5.0, gt=0.0, le=1e9, description="budget per step, per advertiser"
    )
    max_step_spend: float = Field(
        2.0,
        ge=1.0,
        allow_inf_nan=True,
        description="most an advertiser may spend in a step, in per-step budget shares "
        "(pacing, auction.bidders.Throttle); inf allowed: only the budget limits",
    )
    strategies: dict[
        Literal["truthful", "shading", "paced", "bandit"], Annotated[float, Field(ge=0.0, le=1e6)]
    ] = Field(
        default_factory=lambda: {"truthful": 0.25, "shading": 0.25, "paced": 0.25, "bandit": 0.25}
    )
    shading: float = Field(0.8, gt=0.0, le=1.0, description="factor of shading bidders")

    @model_validator(mode="after")
    def _check_mix(self) -> AdvertiserSection:
        weights = list(self.strategies.values())
        if sum(weights) <= 0:
            raise ValueError("strategies: shares must be >= 0 with a positive sum")
        return self


MOVIELENS_USERS = 943  # users of MovieLens-100k (checked against the data in the tests)
MOVIELENS_GENRES = 18  # its genres, "unknown" left out
CLOTHING_CLASSES = 20  # clothing classes of the Women's Clothing E-Commerce Reviews
_SYNTHETIC_ONLY = ("communities", "homophily", "taste_concentration")


class WorldSection(_Section):
    """Which world the market runs on: drawn (``synthetic``), real (``movielens``), or drawn
    users with a real clothing catalogue (``clothing``)."""

    kind: Literal["synthetic", "movielens", "clothing"] = "synthetic"
    history: int = Field(
        20, ge=1, le=200, description="events in each device's private history (lm scorer)"
    )
    min_positives: int = Field(
        5, ge=2, le=500, description="movielens: least ratings >= 4 a user needs to take part"
    )
    min_common: int = Field(
        5, ge=1, le=1_000, description="movielens: co-rated movies behind a friendship tie"
    )
    smoothing: float = Field(
        2.0, gt=0.0, le=1_000.0, description="movielens: pseudo-ratings toward the genre mix"
    )


class AgentsSection(_Section):
    """What scores ads on the device: a language-model agent (its LoRA adapter + head, trained
    by the federated rounds), a device-sized student distilled from it at the start of the run
    (``agents.distill``; no federated rounds; its one pass over the devices' own contexts is
    user-level DP with the ``[federated]`` clipping norm and noise multiplier, charged to each
    user's budget), or click counts per category (a baseline without a model)."""

    scorer: Literal["category", "lm", "student"] = "lm"
    model: Literal["tiny-encoder", "minilm"] = "minilm"
    max_length: int = Field(32, ge=8, le=512, description="tokens kept per text")
    lora_rank: int = Field(8, ge=1, le=64, description="rank of the agents' LoRA adapter")


class OfflineSection(_Section):
    """Offline evaluation of the agents' ad selection on logged bandit data (``fedadagent run``
    evaluates instead of simulating when ``dataset`` is not ``none``)."""

    dataset: Literal["none", "obp"] = "none"
    behavior_policy: Literal["random", "bts"] = "random"
    campaign: Literal["all", "men", "women"] = "all"
    test_size: float = Field(0.3, gt=0.0, lt=1.0, description="newest share held out")
    policy: Literal["rank", "softmax"] = "softmax"
    temperature: float = Field(1.0, gt=0.0, le=100.0, description="softmax over CTR logits")
    l2: float = Field(1.0, ge=0.0, le=1e6, description="ridge penalty of the CTR model")


class ExperimentConfig(_Section):
    """Top level of a config file."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    output_dir: str = "runs"
    auction: AuctionSection = Field(default_factory=AuctionSection)
    truthfulness: TruthfulnessSection = Field(default_factory=TruthfulnessSection)
    market: MarketSection = Field(default_factory=MarketSection)
    advertisers: AdvertiserSection = Field(default_factory=AdvertiserSection)
    social: SocialSection = Field(default_factory=SocialSection)
    federated: FederatedSection = Field(default_factory=FederatedSection)
    privacy: PrivacySection = Field(default_factory=PrivacySection)
    world: WorldSection = Field(default_factory=WorldSection)
    agents: AgentsSection = Field(default_factory=AgentsSection)
    offline: OfflineSection = Field(default_factory=OfflineSection)

    @model_validator(mode="after")
    def _check_privacy(self) -> ExperimentConfig:
        if self.privacy.epsilon_budget == float("inf"):
            return self
        what = "no finite privacy.epsilon_budget can pay; set it to inf to accept that"
        uses_dp = self.federated.every or self.agents.scorer == "student"
        if uses_dp and self.federated.noise_multiplier == 0:
            raise ValueError(f"federated.noise_multiplier: 0 sends updates without noise, {what}")
        if self.social.gossip_rounds and self.social.trend_weight and not self.social.trend_private:
            raise ValueError(f"social.trend_private: false shares raw summaries, {what}")
        return self

    @model_validator(mode="after")
    def _check_real_world(self) -> ExperimentConfig:
        if self.federated.every and self.agents.scorer != "lm":
            raise ValueError(
                "federated.every: federated rounds train the LM agents; with agents.scorer = "
                f"{self.agents.scorer!r} set federated.every = 0"
            )
        if self.world.kind == "clothing" and self.market.categories > CLOTHING_CLASSES:
            raise ValueError(
                f"market.categories: the clothing catalogue has {CLOTHING_CLASSES} classes"
            )
        if self.world.kind != "movielens":
            return self
        if self.market.users > MOVIELENS_USERS:
            raise ValueError(
                f"market.users: the movielens world has at most {MOVIELENS_USERS} users"
            )
        if self.market.categories > MOVIELENS_GENRES:
            raise ValueError(
                f"market.categories: the movielens world has at most {MOVIELENS_GENRES} "
                "genres (its categories are the most rated ones)"
            )
        for key in _SYNTHETIC_ONLY:  # a default is fine: resolved configs list every key
            if getattr(self.social, key) != SocialSection.model_fields[key].default:
                raise ValueError(
                    f"social.{key}: only used by world.kind = 'synthetic' (the movielens "
                    "graph and tastes come from the ratings)"
                )
        return self


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section a dotted path leads to (``()``: the top level); None if it is no section."""
    model: type[BaseModel] = ExperimentConfig
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model = _model_at(loc[:-1])
    return sorted(model.model_fields) if model is not None else []


_TYPE_ERRORS = {  # pydantic error types of a wrong kind of value -> what is allowed
    "int_type": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "a string",
}


def _bound(field: FieldInfo, closed: str, strict: str) -> tuple[Any, bool] | None:
    for rule in field.metadata:
        for name, inclusive in ((closed, True), (strict, False)):
            if hasattr(rule, name):
                return getattr(rule, name), inclusive
    return None


def _allowed_value(loc: tuple[Any, ...], kind: str) -> str:
    """``'an integer in [1, 1000]'``: the kind of value a key takes, with its bounds if any."""
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model is not None else None
    if field is None:
        return kind
    low, high = _bound(field, "ge", "gt"), _bound(field, "le", "lt")
    if low is None and high is None:
        return kind
    left = f"[{low[0]}" if low and low[1] else f"({low[0]}" if low else "(-inf"
    right = f"{high[0]}]" if high and high[1] else f"{high[0]})" if high else "inf)"
    return f"{kind} in {left}, {right}"


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = clip(".".join(str(p) for p in loc)) or "<root>"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc))
        return f"unknown key '{key}'; allowed here: {allowed}"
    msg = error["msg"].removeprefix("Value error, ")
    if not loc:  # a check across sections: its message names the keys
        return msg
    text = f"'{key}': {msg} (got {clip(repr(error.get('input')))})"
    kind = _TYPE_ERRORS.get(error["type"])
    return f"{text}; allowed: {_allowed_value(loc, kind)}" if kind else text


def parse_config(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a config mapping; raise ConfigError listing every problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid config:\n  {problems}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; ConfigError if it is missing, unreadable, not UTF-8 or not TOML."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "TOML files are UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: arrays or tables nested too deeply to parse (a config needs three levels at "
            "most: [section], key, array or table)"
        ) from None


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Load a TOML file (``None``: the embedded defaults) and apply dotted-key overrides.

    Args:
        path: TOML file.
        overrides: ``{"auction.reserve": 0.1}`` style overrides (e.g. from a sweep or ``-c``).
    """
    data = _read_toml(Path(path)) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{clip(dotted)}': '{clip(part)}' is not a section")
            node = child
        node[leaf] = value
    return parse_config(data)
