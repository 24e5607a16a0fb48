"""One recorded seed per run, spawned into independent named streams.

Each component asks for its stream by name, so adding a component never shifts the numbers of
another: the stream of ``"auction"`` is the same whatever else the run draws.

Example:
    >>> seeds = RunSeeds(42)
    >>> a = seeds.generator("auction").random()
    >>> a == RunSeeds(42).generator("auction").random()
    True
"""

from __future__ import annotations

import zlib

import numpy as np


class RunSeeds:
    """Named, reproducible random streams derived from one integer seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def sequence(self, name: str, *index: int) -> np.random.SeedSequence:
        """SeedSequence for component ``name`` (and optional sub-indices, e.g. an agent id)."""
        key = (zlib.crc32(name.encode()), *index)
        return np.random.SeedSequence(self.seed, spawn_key=key)

    def generator(self, name: str, *index: int) -> np.random.Generator:
        """Generator for component ``name``."""
        return np.random.default_rng(self.sequence(name, *index))
