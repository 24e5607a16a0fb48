"""Synthetic worlds: users with hidden category preferences, advertisers with values and budgets.

Ground truth (hidden from every agent): user ``u`` clicks an ad of category ``c`` shown in a slot
with CTR ``s`` with probability ``s x min(1, base_ctr x C x pref[u, c])``; preferences are
Dirichlet, so the mean CTR of a perfectly shown ad is ``base_ctr``. ``world.kind = "movielens"``
builds the same contract from real ratings, ``"clothing"`` gives this world real product texts
(:mod:`economy.real_world`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx
import numpy as np

from graphs import stochastic_block

from .config import ExperimentConfig
from .seeding import RunSeeds

# Product lines of the synthetic catalogue: category c is _PRODUCTS[c % 24], numbered after 24.
_PRODUCTS = (
    "running shoes", "summer dresses", "coffee beans", "yoga mats", "headphones",
    "board games", "skin care", "camping tents", "kitchen knives", "watches", "novels",
    "garden tools", "pet food", "sneakers", "smartphones", "green tea", "rain jackets", "toys",
    "bicycles", "perfume", "laptops", "handbags", "vinyl records", "chocolate",
)  # fmt: skip
_STYLES = ("classic", "new", "premium", "eco", "compact", "vintage", "sport", "smart")


@dataclass(frozen=True)
class WorldTexts:
    """What the language-model agents read (the simulator's ground truth never uses it).

    Attributes:
        categories: (categories,) category names.
        ads: (advertisers,) each advertiser's ad text.
        histories: per user, its private history, oldest first: ``(kind, text, time in s)``
            with ``kind`` an ``agents.PrivateContext`` event kind.
    """

    categories: tuple[str, ...]
    ads: tuple[str, ...]
    histories: tuple[tuple[tuple[str, str, float], ...], ...]


@dataclass(frozen=True)
class World:
    """Everything the simulator knows and the agents do not.

    Attributes:
        prefs: (users, categories) float, each row sums to 1.
        ad_category: (advertisers,) int.
        values: (advertisers,) float, value per click.
        budgets: (advertisers,) float, budget per step.
        strategies: (advertisers,) str, bidding strategy name.
        base_ctr: CTR of a perfectly matched ad in a slot with CTR 1.
        community: (users,) int, each user's community.
        graph: social graph on users 0..users-1 (ties mostly inside communities).
        texts: category names, ad texts and private histories (None: not drawn; the
            category scorer needs none).
    """

    prefs: np.ndarray
    ad_category: np.ndarray
    values: np.ndarray
    budgets: np.ndarray
    strategies: np.ndarray
    base_ctr: float
    community: np.ndarray
    graph: nx.Graph
    texts: WorldTexts | None = None

    @property
    def n_users(self) -> int:
        return self.prefs.shape[0]

    @property
    def n_categories(self) -> int:
        return self.prefs.shape[1]

    @property
    def n_advertisers(self) -> int:
        return self.values.shape[0]

    def true_ctr(self, users: np.ndarray) -> np.ndarray:
        """(len(users), advertisers) click probability of each ad in a slot with CTR 1."""
        ctr = self.prefs[np.asarray(users)[:, None], self.ad_category]  # one (I, n) array,
        ctr *= self.base_ctr * self.prefs.shape[1]  # updated in place: it is the step's largest
        return np.minimum(ctr, 1.0, out=ctr)


def make_world(cfg: ExperimentConfig, seeds: RunSeeds) -> World:
    """The world ``world.kind`` names; the same seed gives the same world. Texts are drawn
    (from their own stream) only when something reads them: the clothing catalogue or the
    language-model scorer."""
    if cfg.world.kind == "movielens":
        from .real_world import make_movielens_world  # reads data: only when asked for

        return make_movielens_world(cfg, seeds)
    world = make_synthetic_world(cfg, seeds)
    if cfg.world.kind == "clothing":
        from .real_world import clothing_catalogue

        catalogue = clothing_catalogue(cfg.market.categories)
    elif cfg.agents.scorer in ("lm", "student"):
        catalogue = synthetic_catalogue(cfg.market.categories)
    else:
        return world  # the category scorer reads no texts
    texts = catalogue_texts(world, cfg.world.history, seeds.generator("texts"), *catalogue)
    return replace(world, texts=texts)


def make_synthetic_world(cfg: ExperimentConfig, seeds: RunSeeds) -> World:
    """Draw a synthetic world (without texts) from the config."""
    m = cfg.market
    soc = cfg.social
    rng = seeds.generator("world")
    # Communities share a taste; users scatter around it (homophily in preferences and ties).
    community = np.sort(rng.integers(0, soc.communities, size=m.users))
    tastes = rng.dirichlet(np.full(m.categories, 0.5), size=soc.communities)
    alpha = soc.taste_concentration * m.categories * tastes[community] + 0.05
    prefs = np.vstack([rng.dirichlet(a) for a in alpha])
    sizes = np.bincount(community, minlength=soc.communities).tolist()
    p_in, p_out = _tie_probabilities(sizes, soc.avg_degree, soc.homophily)
    graph = stochastic_block(sizes, p_in, p_out, rng=seeds.generator("graph"))
    ad_category = rng.integers(0, m.categories, size=m.advertisers)
    values, budgets, strategies = advertiser_terms(cfg, rng)
    return World(
        prefs=prefs,
        ad_category=ad_category,
        values=values,
        budgets=budgets,
        strategies=strategies,
        base_ctr=m.base_ctr,
        community=community,
        graph=graph,
    )


def advertiser_terms(
    cfg: ExperimentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values per click (lognormal with mean ``value_mean``), per-step budgets and bidding
    strategies of ``market.advertisers`` advertisers: (advertisers,) each."""
    n, adv = cfg.market.advertisers, cfg.advertisers
    mu = np.log(adv.value_mean) - adv.value_sigma**2 / 2  # lognormal with the given mean
    values = rng.lognormal(mu, adv.value_sigma, size=n)
    names = list(adv.strategies)
    weights = np.array([adv.strategies[k] for k in names], dtype=float)
    strategies = rng.choice(names, size=n, p=weights / weights.sum())
    return values, np.full(n, adv.budget_per_step), strategies


def synthetic_catalogue(categories: int) -> tuple[tuple[str, ...], list[list[str]]]:
    """Category names (product lines) and each category's products (one per style)."""
    n = len(_PRODUCTS)
    names = tuple(
        _PRODUCTS[c % n] + (f" line {c // n}" if c >= n else "") for c in range(categories)
    )
    return names, [[f"{style} {name}" for style in _STYLES] for name in names]


def catalogue_texts(
    world: World,
    history: int,
    rng: np.random.Generator,
    names: tuple[str, ...],
    products: list[list[str]],
) -> WorldTexts:
    """Texts for the language-model agents from a catalogue (``products[c]``: texts of
    category ``c``'s products): each ad is a product of its category, each user has viewed
    ``history`` products (one an hour), their categories drawn from the user's hidden
    preferences."""
    ads = tuple(products[c][rng.integers(len(products[c]))] for c in world.ad_category)
    cum = np.cumsum(world.prefs, axis=1)
    draws = rng.random((world.n_users, history, 1))
    cats = np.minimum((draws > cum[:, None, :]).sum(-1), world.n_categories - 1)
    picks = rng.random(cats.shape)
    histories = tuple(
        tuple(
            ("view", products[c][int(u * len(products[c]))], 3600.0 * t)
            for t, (c, u) in enumerate(zip(row_c, row_u, strict=True))
        )
        for row_c, row_u in zip(cats, picks, strict=True)
    )
    return WorldTexts(categories=names, ads=ads, histories=histories)


def _tie_probabilities(sizes: list[int], degree: float, homophily: float) -> tuple[float, float]:
    """SBM edge probabilities giving about ``degree`` ties per user, ``homophily`` of them
    inside the user's community."""
    n = sum(sizes)
    inside = sum(s * (s - 1) for s in sizes) / max(n, 1)  # mean possible ties inside
    outside = n - 1 - inside
    p_in = min(1.0, homophily * degree / inside) if inside > 0 else 0.0
    p_out = min(1.0, (1 - homophily) * degree / outside) if outside > 0 else 0.0
    return p_in, p_out
