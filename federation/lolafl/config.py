"""Run configuration of the Flower apps, flattened onto Flower's run config.

Each field ``x_y`` of :class:`RunConfig` and of its :class:`LoLaFLSettings` is the key
``lolafl-x-y`` in ``[tool.flwr.app.config]`` and in the ConfigRecord the server sends; other
keys are ignored, unknown ``lolafl-`` keys are errors. Flower values are str/int/float/bool,
so there ``rank = 0`` means full rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import LoLaFLError
from ._validation import as_count
from .settings import LoLaFLSettings

PREFIX = "lolafl-"


@dataclass(frozen=True)
class RunConfig:
    """Hyperparameters plus where the data and results live.

    Attributes:
        settings: the hyperparameters.
        data: "synthetic" or the path of an .npz with ``features`` and ``labels``.
        dirichlet_alpha: label-skew concentration (0: IID split).
        seed: seeds the data, the partition and each client's train/test split.
        test_fraction: share of each client's samples held out for its local test.
        min_nodes: nodes the server waits for; all connected nodes then take part.
        output: folder for ``model.npz`` and ``summary.json`` ("" writes nothing).
    """

    settings: LoLaFLSettings = field(default_factory=LoLaFLSettings)
    data: str = "synthetic"
    dirichlet_alpha: float = 0.0
    seed: int = 0
    test_fraction: float = 0.2
    min_nodes: int = 2
    output: str = ""

    def __post_init__(self) -> None:
        as_count(self.min_nodes, "min_nodes")
        as_count(self.seed, "seed", minimum=0)
        if self.dirichlet_alpha < 0:
            raise LoLaFLError(f"dirichlet_alpha must be >= 0 (0: IID), got {self.dirichlet_alpha}")

    @property
    def alpha(self) -> float | None:
        """Dirichlet concentration, or None for an IID split."""
        return self.dirichlet_alpha or None

    def to_mapping(self) -> dict[str, Any]:
        """``{"lolafl-<field>": value}`` for a Flower ConfigRecord."""
        flat = {**dataclasses.asdict(self.settings), **_own_fields(self)}
        flat["rank"] = flat["rank"] or 0
        return {_key(name): value for name, value in flat.items()}

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> RunConfig:
        """Read the ``lolafl-`` keys of a Flower run config or ConfigRecord."""
        defaults = cls().to_mapping()
        unknown = sorted(k for k in mapping if k.startswith(PREFIX) and k not in defaults)
        if unknown:
            raise LoLaFLError(f"unknown config keys {unknown}; allowed: {sorted(defaults)}")
        values = {}
        for key, default in defaults.items():
            value = mapping.get(key, default)
            if isinstance(default, float) and type(value) is int:
                value = float(value)
            if type(value) is not type(default):
                raise LoLaFLError(f"{key} must be a {type(default).__name__}, got {value!r}")
            values[key.removeprefix(PREFIX).replace("-", "_")] = value
        values["rank"] = values["rank"] or None
        names = {f.name for f in dataclasses.fields(LoLaFLSettings)}
        settings = LoLaFLSettings(**{k: v for k, v in values.items() if k in names})
        return cls(settings=settings, **{k: v for k, v in values.items() if k not in names})


def _own_fields(config: RunConfig) -> dict[str, Any]:
    return {
        f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "settings"
    }


def _key(name: str) -> str:
    return PREFIX + name.replace("_", "-")
