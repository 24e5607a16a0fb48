"""The node's ad embeddings under the served adapter: one matrix, a row per ad text seen.

The node serves one adapter, so its ad embeddings need no version key: ``rows(texts)`` is a dict
lookup per text and one gather, (n, d) float32; texts not seen before run through the model
once, in one batch (and land in the backbone's own cache too, so an :class:`agents.Agent` on the
same backbone reads the very same vectors). Past ``limit`` texts the index starts again empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents import Backbone


class AdEmbeddings:
    """Ad text -> row of one (rows, d) float32 matrix, filled from ``backbone.embed``.

    Args:
        backbone: the served model, its adapter active.
        limit: most texts kept (then the index is cleared and refilled on demand), >= 1.
    """

    def __init__(self, backbone: Backbone, limit: int = 200_000) -> None:
        self.backbone, self.limit = backbone, limit
        self._index: dict[str, int] = {}
        self._matrix = np.empty((1024, backbone.dim), dtype=np.float32)
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._index)

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) embeddings of ``texts`` (a fresh array)."""
        index = self._index
        idx = [index.get(t, -1) for t in texts]
        if -1 in idx:
            missing = [t for t, i in zip(texts, idx, strict=True) if i < 0]
            self._add(missing)
            self.hits += len(texts) - len(missing)
            idx = [index[t] for t in texts]
        else:
            self.hits += len(texts)
        return self._matrix[idx]

    def _add(self, missing: list[str]) -> None:
        new = list(dict.fromkeys(missing))
        self.misses += len(missing)
        if len(self._index) + len(new) > self.limit:
            self._index.clear()
        vecs = self.backbone.embed(new)
        start = len(self._index)
        if start + len(new) > len(self._matrix):
            rows = max(2 * len(self._matrix), start + len(new))
            grown = np.empty((rows, vecs.shape[1]), dtype=np.float32)
            grown[:start] = self._matrix[:start]
            self._matrix = grown
        self._matrix[start : start + len(new)] = vecs
        self._index.update({t: start + i for i, t in enumerate(new)})
