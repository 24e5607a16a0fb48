"""Wire formats of the two uplink schemes: what a client sends for one layer.

Both turn into named numpy arrays (``to_arrays``) for Flower's ArrayRecord and back
(``from_arrays``); ``num_values`` counts the scalars uploaded (symmetric matrices as upper
triangles), which is what the byte counts in the trainer and the benchmark use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import LoLaFLError
from ._linalg import pack_symmetric, triangle_size, unpack_symmetric


@dataclass(frozen=True)
class HMMessage:
    """HM-like uplink: the client's local layer.

    Attributes:
        counts: (J,) int, the client's samples per class.
        E: (d, d) float, ``alpha_k (I + alpha_k Z_k^T Z_k)^-1``.
        C: (J_k, d, d) float, ``C_kj`` for the J_k classes with ``counts > 0``, in class order.
    """

    counts: np.ndarray
    E: np.ndarray
    C: np.ndarray

    def __post_init__(self) -> None:
        d = self.E.shape[0]
        held = int(np.count_nonzero(self.counts))
        if self.E.shape != (d, d) or self.C.shape != (held, d, d):
            raise LoLaFLError(
                f"HMMessage needs E (d, d) and C ({held}, d, d) for the {held} classes held, "
                f"got {self.E.shape} and {self.C.shape}"
            )

    @property
    def num_values(self) -> int:
        """Scalars uploaded: counts plus the upper triangles of E and each C_kj."""
        return len(self.counts) + (1 + self.C.shape[0]) * triangle_size(self.E.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for transport."""
        return {"counts": self.counts, "E": pack_symmetric(self.E), "C": pack_symmetric(self.C)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HMMessage:
        """Inverse of :meth:`to_arrays`."""
        _require(arrays, ("counts", "E", "C"), "HMMessage")
        return cls(
            counts=np.asarray(arrays["counts"], dtype=np.int64),
            E=unpack_symmetric(arrays["E"]),
            C=unpack_symmetric(arrays["C"]),
        )


@dataclass(frozen=True)
class CMMessage:
    """CM-based uplink: low-rank factors of the client's per-class Gram matrices.

    Attributes:
        counts: (J,) int, the client's samples per class.
        ranks: (J,) int, columns of ``factors`` per class (0 for classes not held).
        factors: (d, sum(ranks)) float; the class-j block ``W_j`` has
            ``W_j W_j^T ~ Z_k^T Pi_j Z_k`` (equal at full rank).
        eps2: the distortion eps^2, which the server needs to form E and C_j.
    """

    counts: np.ndarray
    ranks: np.ndarray
    factors: np.ndarray
    eps2: float

    def __post_init__(self) -> None:
        if self.ranks.shape != self.counts.shape or self.factors.ndim != 2:
            raise LoLaFLError(
                f"CMMessage needs counts and ranks of shape (J,) and factors (d, r), got "
                f"{self.counts.shape}, {self.ranks.shape}, {self.factors.shape}"
            )
        if self.factors.shape[1] != int(self.ranks.sum()):
            raise LoLaFLError(
                f"CMMessage.factors has {self.factors.shape[1]} columns, ranks sum to "
                f"{int(self.ranks.sum())}"
            )

    @property
    def num_values(self) -> int:
        """Scalars uploaded: counts, ranks, eps2 and the factor matrix."""
        return 2 * len(self.counts) + 1 + self.factors.size

    def class_factors(self) -> list[np.ndarray]:
        """The (d, r_j) factor of each class, in class order."""
        return np.split(self.factors, np.cumsum(self.ranks)[:-1], axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for transport."""
        return {
            "counts": self.counts,
            "ranks": self.ranks,
            "factors": self.factors,
            "eps2": np.array([self.eps2]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CMMessage:
        """Inverse of :meth:`to_arrays`."""
        _require(arrays, ("counts", "ranks", "factors", "eps2"), "CMMessage")
        return cls(
            counts=np.asarray(arrays["counts"], dtype=np.int64),
            ranks=np.asarray(arrays["ranks"], dtype=np.int64),
            factors=np.asarray(arrays["factors"], dtype=np.float64),
            eps2=float(np.asarray(arrays["eps2"]).reshape(-1)[0]),
        )


def message_from_arrays(scheme: str, arrays: dict[str, np.ndarray]) -> HMMessage | CMMessage:
    """Rebuild the uplink message of ``scheme`` ("hm" or "cm") from its named arrays."""
    return (HMMessage if scheme == "hm" else CMMessage).from_arrays(arrays)


def _require(arrays: dict[str, np.ndarray], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise LoLaFLError(f"{what} arrays lack {missing}; expected keys {list(keys)}")
