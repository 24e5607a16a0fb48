"""Communication accounting: bytes sent per client and round, vs sending the full model.

Example:
    >>> import numpy as np
    >>> array_bytes({"lora_A": np.zeros((8, 384), np.float32)})
    12288
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


def array_bytes(arrays: Mapping[str, np.ndarray]) -> int:
    """Payload bytes of a dict of arrays (what an ArrayRecord carries, without framing)."""
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


@dataclass
class CommLedger:
    """Bytes up and down per (round, client), and the full model's size for comparison."""

    full_model_bytes: int
    up: dict[tuple[int, str], int] = field(default_factory=dict)
    down: dict[tuple[int, str], int] = field(default_factory=dict)

    def record(self, server_round: int, client: str, *, up: int, down: int) -> None:
        self.up[(server_round, client)] = int(up)
        self.down[(server_round, client)] = int(down)

    def round_totals(self, server_round: int) -> tuple[int, int]:
        """(bytes up, bytes down) of one round over all clients."""
        up = sum(v for (r, _), v in self.up.items() if r == server_round)
        down = sum(v for (r, _), v in self.down.items() if r == server_round)
        return up, down

    def savings(self) -> float:
        """How many times fewer bytes went up than sending the full model each time."""
        sent = sum(self.up.values())
        return float("inf") if sent == 0 else self.full_model_bytes * len(self.up) / sent
