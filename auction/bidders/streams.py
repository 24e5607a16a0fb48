"""Independent random streams, one per repetition, drawn in blocks so batching costs nothing.

A study of ``R`` independent repetitions must give repetition ``r`` the same numbers whether
it runs alone or inside a batch. Each repetition therefore owns its own Generator (from its own
``SeedSequence``); to keep the per-round cost vectorised, every stream draws ``block`` rounds of
uniforms at once and the batch reads them row by row. A stream's numbers depend only on its
seed, never on ``R`` or on the other repetitions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import AuctionError

SeedLike = np.random.SeedSequence | int

# Rounds drawn per refill: large enough that the Python loop over R generators is amortised,
# small enough that a (block, R, width) float64 buffer stays a few MB for R in the thousands.
_BLOCK = 256


def repetition_seeds(
    seed: int, repetitions: int, *, first: int = 0
) -> list[np.random.SeedSequence]:
    """The ``SeedSequence`` of repetitions ``first .. first + repetitions - 1`` of a study.

    Repetition ``r`` gets ``SeedSequence(seed, spawn_key=(r,))``, which is what
    ``SeedSequence(seed).spawn(R)[r]`` gives, so a study can be split into batches at will.

    Example:
        >>> a = repetition_seeds(7, 3)[2]
        >>> b = repetition_seeds(7, 1, first=2)[0]
        >>> a.generate_state(2).tolist() == b.generate_state(2).tolist()
        True
    """
    if int(seed) != seed or seed < 0:
        raise AuctionError(f"seed must be an integer >= 0, got {seed!r}")
    if int(repetitions) != repetitions or repetitions < 1:
        raise AuctionError(f"repetitions must be an integer >= 1, got {repetitions!r}")
    if int(first) != first or first < 0:
        raise AuctionError(f"first must be an integer >= 0, got {first!r}")
    return [
        np.random.SeedSequence(int(seed), spawn_key=(r,)) for r in range(first, first + repetitions)
    ]


class Streams:
    """``R`` independent uniform streams read one round at a time as an (R, width) array.

    Args:
        seeds: one ``SeedSequence`` (or int seed) per repetition.
        width: uniforms each repetition needs per round.

    Example:
        >>> s = Streams([np.random.SeedSequence(1), np.random.SeedSequence(2)], width=3)
        >>> s.next().shape
        (2, 3)
    """

    def __init__(self, seeds: Sequence[SeedLike], width: int) -> None:
        if len(seeds) == 0:
            raise AuctionError("seeds must hold one SeedSequence per repetition (at least one)")
        if int(width) != width or width < 1:
            raise AuctionError(f"width must be an integer >= 1, got {width!r}")
        self._gens = [np.random.default_rng(s) for s in seeds]
        self.width = int(width)
        self._buf = np.empty((0, len(self._gens), self.width))
        self._row = 0

    @property
    def repetitions(self) -> int:
        """Number of streams ``R``."""
        return len(self._gens)

    def next(self) -> np.ndarray:
        """(R, width) uniforms in [0, 1) for the next round (a view; do not keep it)."""
        if self._row == self._buf.shape[0]:
            self._buf = np.stack([g.random((_BLOCK, self.width)) for g in self._gens], axis=1)
            self._row = 0
        out = self._buf[self._row]
        self._row += 1
        return out
