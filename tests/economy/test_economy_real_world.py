"""The MovieLens world: deterministic, grounded in the ratings, and the market runs on it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.datasets import movielens
from economy.config import MOVIELENS_GENRES, MOVIELENS_USERS, ConfigError, parse_config
from economy.market import simulate, summarize
from economy.seeding import RunSeeds
from economy.world import make_world
from graphs import homophily

COUNTS = {"agents": {"scorer": "category"}, "federated": {"every": 0}}
ML = {"world": {"kind": "movielens"}, "market": {"users": 120, "advertisers": 15}, **COUNTS}


@pytest.fixture(scope="module")
def world():
    return make_world(parse_config(ML), RunSeeds(3))


def _same(a, b) -> bool:
    arrays = ("prefs", "ad_category", "values", "budgets", "strategies", "community")
    return (
        all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays)
        and sorted(a.graph.edges(data=True)) == sorted(b.graph.edges(data=True))
        and a.texts == b.texts
    )


def test_same_seed_same_world_other_seed_other_users(world):
    again = make_world(parse_config(ML), RunSeeds(3))
    assert _same(world, again)
    other = make_world(parse_config(ML), RunSeeds(4))
    assert not np.array_equal(world.prefs, other.prefs)


def test_world_contract(world):
    cfg = parse_config(ML)
    assert world.prefs.shape == (120, cfg.market.categories)
    np.testing.assert_allclose(world.prefs.sum(axis=1), 1.0)
    assert (world.prefs > 0).all()
    assert world.ad_category.shape == (15,) and world.ad_category.max() < cfg.market.categories
    assert world.values.shape == world.budgets.shape == world.strategies.shape == (15,)
    tc = world.true_ctr(np.arange(120))
    assert tc.shape == (120, 15) and ((tc >= 0) & (tc <= 1)).all()
    texts = world.texts
    assert texts.categories[:3] == ("Drama", "Comedy", "Action")  # the most liked genres
    assert len(texts.ads) == 15 and len(texts.histories) == 120
    assert all(1 <= len(h) <= cfg.world.history for h in texts.histories)
    assert all(kind == "purchase" for h in texts.histories for kind, _, _ in h)
    for a, text in enumerate(texts.ads):  # an ad's category is one of its movie's genres
        assert texts.categories[world.ad_category[a]] in text.rpartition("Genres: ")[2]


def test_preferences_come_from_the_users_own_ratings(world):
    """Recompute one user's preference from the raw ratings, independently of the builder."""
    cfg = parse_config(ML)
    ratings, text = movielens()
    names = world.texts.categories
    first_history = world.texts.histories[0][0][1]
    # find the chosen user 0: the one whose newest positives include its first history text
    positives = ratings[ratings.rating >= 4]
    by_text = {t: mid for mid, t in text.items()}
    candidates = positives[positives.movie_id == by_text[first_history]].user_id.unique()

    def pref_of(uid: int) -> np.ndarray:
        def share(mid: int) -> np.ndarray:
            gs = [g for g in text[mid].rpartition("Genres: ")[2].split(", ") if g in names]
            row = np.zeros(len(names))
            for g in gs:
                row[names.index(g)] = 1.0 / len(gs)
            return row

        crowd = sum(share(m) for m in positives.movie_id)
        crowd = crowd / crowd.sum()
        counts = sum(share(m) for m in positives[positives.user_id == uid].movie_id)
        s = cfg.world.smoothing
        return (counts + s * crowd) / (counts.sum() + s)

    assert any(np.allclose(pref_of(int(u)), world.prefs[0]) for u in candidates)


def test_social_graph_from_co_ratings(world):
    G = world.graph
    assert sorted(G.nodes) == list(range(120))
    assert all(d["common"] >= 5 for _, _, d in G.edges(data=True))
    assert 3 < 2 * G.number_of_edges() / 120 < 16  # near avg_degree = 8
    assert homophily(G) > 0.3  # Louvain communities: ties mostly inside
    assert world.community.shape == (120,) and world.community.min() == 0


@pytest.mark.slow
def test_market_runs_on_movielens_and_is_seeded():
    cfg = parse_config({**ML, "seed": 2, "market": {**ML["market"], "steps": 2}})
    a, b = summarize(cfg, simulate(cfg)), summarize(cfg, simulate(cfg))
    assert a == b and a["steps"] == 2
    t = a["totals"]
    assert t["impressions"] == 2 * 120 * cfg.market.impressions_per_user
    assert t["revenue"] <= cfg.advertisers.budget_per_step * 2 * 15 + 1e-9
    assert np.isclose(t["social_welfare"], t["revenue"] + t["advertiser_surplus"])


def test_constants_match_the_data():
    ratings, text = movielens()
    genres = {g for t in text.values() for g in t.rpartition("Genres: ")[2].split(", ") if g}
    assert ratings.user_id.nunique() == MOVIELENS_USERS
    assert len(genres) == MOVIELENS_GENRES


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"market": {"users": MOVIELENS_USERS + 1}}, "market.users"),
        ({"market": {"categories": MOVIELENS_GENRES + 1}}, "market.categories"),
        ({"social": {"homophily": 0.5}}, "social.homophily"),
        ({"social": {"communities": 3}}, "social.communities"),
        ({"world": {"kind": "movielens", "min_common": 0}}, "world.min_common"),
    ],
)
def test_bad_movielens_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({**ML, **override})


def test_bad_world_kind_names_the_key():
    with pytest.raises(ConfigError, match=r"world\.kind"):
        parse_config({"world": {"kind": "mars"}})


def test_too_few_eligible_users_or_movies_fails_before_the_market():
    strict = {"world": {"kind": "movielens", "min_positives": 400}, "market": {"users": 10}}
    with pytest.raises(ConfigError, match=r"market\.users.*min_positives"):
        make_world(parse_config(strict), RunSeeds(0))
    many = {"world": {"kind": "movielens"}, "market": {"users": 10, "advertisers": 5000}}
    with pytest.raises(ConfigError, match=r"market\.advertisers"):
        make_world(parse_config(many), RunSeeds(0))


CLOTHING = {
    "world": {"kind": "clothing", "history": 6},
    "market": {"users": 50, "advertisers": 12},
    **COUNTS,
}


def test_clothing_catalogue_texts_follow_categories_and_tastes():
    from agents.datasets import clothing_reviews
    from economy.config import CLOTHING_CLASSES

    cfg = parse_config(CLOTHING)
    w = make_world(cfg, RunSeeds(1))
    assert _same(w, make_world(cfg, RunSeeds(1)))
    names = w.texts.categories
    assert names[:2] == ("Dresses", "Knits")  # the classes with the most reviews
    for a, text in enumerate(w.texts.ads):  # an ad is a product of its own class
        assert text.startswith(names[w.ad_category[a]] + ":")
    assert all(len(h) == 6 for h in w.texts.histories)
    # users, tastes and ties are the synthetic world's (same seed, same draws)
    synthetic = make_world(parse_config({"market": CLOTHING["market"], **COUNTS}), RunSeeds(1))
    np.testing.assert_array_equal(w.prefs, synthetic.prefs)
    assert synthetic.texts is None  # the category scorer draws no texts
    assert clothing_reviews()["Class Name"].nunique() == CLOTHING_CLASSES
    with pytest.raises(ConfigError, match=r"market\.categories"):
        parse_config({**CLOTHING, "market": {"categories": CLOTHING_CLASSES + 1}})


@pytest.mark.slow
def test_lm_agents_run_on_the_clothing_catalogue():
    lm = {"scorer": "lm", "model": "tiny-encoder"}
    cfg = parse_config({**CLOTHING, "agents": lm, "market": {"steps": 2}})
    a, b = summarize(cfg, simulate(cfg)), summarize(cfg, simulate(cfg))
    assert a == b and a["totals"]["impressions"] == 2 * 200 * cfg.market.impressions_per_user


@settings(max_examples=8, deadline=None)
@given(
    users=st.integers(2, 60),
    categories=st.integers(1, MOVIELENS_GENRES),
    advertisers=st.integers(1, 40),
    seed=st.integers(0, 2**31),
)
def test_movielens_world_invariants(users, categories, advertisers, seed):
    cfg = parse_config(
        {
            "world": {"kind": "movielens", "history": 3},
            "market": {"users": users, "categories": categories, "advertisers": advertisers},
        }
    )
    w = make_world(cfg, RunSeeds(seed))
    assert w.prefs.shape == (users, categories)
    np.testing.assert_allclose(w.prefs.sum(axis=1), 1.0)
    assert ((w.ad_category >= 0) & (w.ad_category < categories)).all()
    assert len(w.texts.ads) == advertisers
    for a, text in enumerate(w.texts.ads):
        assert w.texts.categories[w.ad_category[a]] in text.rpartition("Genres: ")[2]
    assert sorted(w.graph.nodes) == list(range(users))
    assert set(np.unique(w.community)) == set(range(w.community.max() + 1))
