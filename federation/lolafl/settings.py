"""Hyperparameters of a LoLaFL run, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from ._validation import as_count, as_positive, as_rank, as_scheme


@dataclass(frozen=True)
class LoLaFLSettings:
    """What a run builds and how clients upload.

    Attributes:
        num_layers: L, layers built (one federated round each, plus one for the head).
        eps2: distortion eps^2 of the coding rate (> 0).
        eta: step size of each layer update (> 0).
        lam: softmax sharpness of the class estimate at inference (> 0).
        scheme: "hm" (harmonic-mean-like, exact) or "cm" (covariance factors).
        rank: factor rank for "cm" (None: full rank, exact).
        subspace_dim: class-subspace dimension of the nearest-subspace classifier.
    """

    num_layers: int = 5
    eps2: float = 0.1
    eta: float = 0.5
    lam: float = 500.0
    scheme: str = "hm"
    rank: int | None = None
    subspace_dim: int = 8

    def __post_init__(self) -> None:
        as_count(self.num_layers, "num_layers", minimum=0)
        as_positive(self.eps2, "eps2")
        as_positive(self.eta, "eta")
        as_positive(self.lam, "lam")
        as_rank(self.rank, as_scheme(self.scheme))
        as_count(self.subspace_dim, "subspace_dim")
