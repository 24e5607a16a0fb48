"""An LRU cache of fixed-width float32 rows, kept in a few large blocks.

:class:`~agents.models.Backbone` caches one embedding per ``(adapter version, text)``. Kept as
one small numpy array per entry, each row costs an array object and a slice of the torch
output it came from, and the long-lived rows end up scattered between the short-lived
activations of the forward passes (heap fragmentation). Here every row is copied into a block
of ``block_rows`` rows (one large allocation, given back whole when the cache is cleared), and
an entry is a key and a slot number.

Example:
    >>> store = RowStore(dim=2, capacity=3)
    >>> store.put(["a", "b"], np.array([[1, 2], [3, 4]], np.float32))
    >>> found, rows = store.get(["b", "x", "a"])  # position of each key's row in rows
    >>> found.tolist(), rows.tolist()
    ([0, -1, 1], [[3.0, 4.0], [1.0, 2.0]])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np

from ._errors import AgentError


class RowStore:
    """At most ``capacity`` rows of ``dim`` float32 values by key; least recently used dropped.

    Args:
        dim: row width.
        capacity: most rows kept (>= 1).
        block_rows: rows per allocated block (blocks are added as the cache fills).
    """

    def __init__(self, dim: int, capacity: int, *, block_rows: int = 4096) -> None:
        if capacity < 1 or block_rows < 1:
            raise AgentError(f"capacity and block_rows must be >= 1, got {capacity}, {block_rows}")
        self.dim, self.block_rows, self._capacity = dim, block_rows, capacity
        self._slots: OrderedDict[Hashable, int] = OrderedDict()
        self._blocks: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def capacity(self) -> int:
        """Most rows kept; lowering it keeps the most recently used rows (re-packed)."""
        return self._capacity

    @capacity.setter
    def capacity(self, capacity: int) -> None:
        if capacity < 1:
            raise AgentError(f"capacity must be >= 1, got {capacity}")
        keys = list(self._slots)[-capacity:]
        _, rows = self.get(keys)
        self.clear()
        self._capacity = capacity
        self.put(keys, rows)

    @property
    def nbytes(self) -> int:
        """Bytes of the allocated blocks."""
        return sum(block.nbytes for block in self._blocks)

    def get(self, keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, rows)``: (n,) the position of each key's row in ``rows`` (-1 if absent)
        and the (m, dim) rows found, in key order (a copy). Found keys become most recent."""
        slots = self._slots
        found = np.full(len(keys), -1, dtype=np.int64)
        hits: list[int] = []
        for i, key in enumerate(keys):
            slot = slots.get(key)
            if slot is not None:
                slots.move_to_end(key)
                found[i] = len(hits)
                hits.append(slot)
        return found, self._gather(np.asarray(hits, dtype=np.int64))

    def put(self, keys: Sequence[Hashable], rows: np.ndarray) -> None:
        """Store (n, dim) ``rows`` under distinct ``keys`` not yet stored, dropping the least
        recently used rows beyond ``capacity`` (the newest ``capacity`` of these are kept)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape != (len(keys), self.dim):
            raise AgentError(f"rows must be ({len(keys)}, {self.dim}), got {rows.shape}")
        for key, row in zip(keys, rows, strict=True):
            slot = self._take_slot()
            self._blocks[slot // self.block_rows][slot % self.block_rows] = row
            self._slots[key] = slot

    def clear(self) -> None:
        """Drop every row and give the blocks back."""
        self._slots.clear()
        self._blocks.clear()

    def _take_slot(self) -> int:
        """The next free slot (slots fill in order and are only freed by eviction), or the
        least recently used key's, which is dropped."""
        used = len(self._slots)
        if used >= self._capacity:
            return self._slots.popitem(last=False)[1]
        if used == len(self._blocks) * self.block_rows:
            rows = min(self.block_rows, self._capacity - used)
            self._blocks.append(np.empty((rows, self.dim), dtype=np.float32))
        return used

    def _gather(self, slots: np.ndarray) -> np.ndarray:
        if len(self._blocks) == 1 or not len(slots):
            return self._blocks[0][slots] if self._blocks else np.empty((0, self.dim), np.float32)
        out = np.empty((len(slots), self.dim), dtype=np.float32)
        block, row = np.divmod(slots, self.block_rows)
        for b in np.unique(block):
            sel = block == b
            out[sel] = self._blocks[b][row[sel]]
        return out
