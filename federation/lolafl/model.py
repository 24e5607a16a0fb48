"""A trained LoLaFL network: L layers, a classifier head, save and load."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ._errors import LoLaFLError
from ._validation import as_count, as_labels, as_positive, normalize_rows
from .classifier import nearest_subspace, softmax_classes, subspace_bases
from .layer import LayerParams, apply_layer
from .settings import LoLaFLSettings

METHODS = ("subspace", "softmax")


@dataclass(frozen=True)
class LoLaFLModel:
    """A white-box network built layer by layer, and its classifier.

    Attributes:
        layers: the L layers, applied in order.
        head: the layer built on the output features; the classifier reads its C_j.
        eta: step size of every layer.
        lam: softmax sharpness of the class estimate ``softmax(-lam ||C_j z||)``.
        subspace_dim: dimension of each class subspace for nearest-subspace prediction.
    """

    layers: tuple[LayerParams, ...]
    head: LayerParams
    eta: float
    lam: float
    subspace_dim: int

    def __post_init__(self) -> None:
        shapes = {(p.dim, p.num_classes) for p in (*self.layers, self.head)}
        if len(shapes) != 1:
            raise LoLaFLError(f"layers and head must share d and J, got {sorted(shapes)}")
        as_positive(self.eta, "eta")
        as_positive(self.lam, "lam")
        subspace_bases(self.head, self.subspace_dim)  # checks subspace_dim early

    @classmethod
    def from_layers(cls, layers: list[LayerParams], settings: LoLaFLSettings) -> LoLaFLModel:
        """The model of a run that built ``layers`` (the last one is the head)."""
        return cls(
            layers=tuple(layers[:-1]),
            head=layers[-1],
            eta=settings.eta,
            lam=settings.lam,
            subspace_dim=settings.subspace_dim,
        )

    @cached_property
    def bases(self) -> np.ndarray:
        """(J, d, subspace_dim) orthonormal bases of the class subspaces."""
        return subspace_bases(self.head, self.subspace_dim)

    @property
    def num_values(self) -> int:
        """Scalars in the network's layers and head, as sent over the wire."""
        return sum(p.num_values for p in (*self.layers, self.head))

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """Features after all layers (m, d), unit-norm rows; ``Z`` (m, d) is normalized first."""
        Z = normalize_rows(Z)
        for params in self.layers:
            Z = apply_layer(Z, params, self.eta, lam=self.lam)
        return Z

    def predict(self, Z: np.ndarray, method: str = "subspace") -> np.ndarray:
        """Class (m,) int for each row of ``Z`` (m, d): "subspace" or "softmax" (see classifier)."""
        if method not in METHODS:
            raise LoLaFLError(f"method must be one of {METHODS}, got {method!r}")
        features = self.transform(Z)
        if method == "subspace":
            return nearest_subspace(features, self.bases)
        return softmax_classes(features, self.head, self.lam)

    def accuracy(self, Z: np.ndarray, labels: np.ndarray, method: str = "subspace") -> float:
        """Fraction of rows of ``Z`` (m, d) whose prediction equals ``labels`` (m,)."""
        labels = as_labels(labels, np.shape(Z)[0], self.head.num_classes)
        return float(np.mean(self.predict(Z, method) == labels))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays: ``layer<i>.<E|C|gamma>``, ``head.<...>`` and ``settings``."""
        arrays = {"settings": np.array([self.eta, self.lam, self.subspace_dim])}
        for name, params in [
            *((f"layer{i}", p) for i, p in enumerate(self.layers)),
            ("head", self.head),
        ]:
            arrays.update({f"{name}.{k}": v for k, v in params.to_arrays().items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LoLaFLModel:
        """Inverse of :meth:`to_arrays`."""

        def params(name: str) -> LayerParams:
            return LayerParams.from_arrays({k: arrays[f"{name}.{k}"] for k in ("E", "C", "gamma")})

        num_layers = sum(1 for key in arrays if key.endswith(".gamma")) - 1
        eta, lam, dim = (float(v) for v in arrays["settings"])
        return cls(
            layers=tuple(params(f"layer{i}") for i in range(num_layers)),
            head=params("head"),
            eta=eta,
            lam=lam,
            subspace_dim=as_count(round(dim), "subspace_dim"),
        )

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (.npz) atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **self.to_arrays())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LoLaFLModel:
        """Read a model written by :meth:`save`."""
        with np.load(path) as data:
            return cls.from_arrays(dict(data))
