"""A market state as JSON + numpy arrays, without pickle: what a checkpoint writes and reads.

:func:`encode` walks an object graph and returns two parts, each a JSON tree plus a dict of
arrays (saved as ``.npz`` and read back with ``allow_pickle=False``):

- ``server``: what the exchange holds (bidders, random generators, the federation's tokens
  and accountant, the metrics so far);
- ``private``: the devices' own state, every object of a class in ``PRIVATE`` and all it
  holds (the LM agents' contexts: history texts, click logs; the click counts per category).

Objects are written as ``{"cls": name, "state": ...}`` records in one table (shared
references stay shared), their state from ``__getstate__`` or ``__dict__``. Reading builds only
classes named in :data:`CLASSES`, a fixed list of ``module:attribute`` names resolved by import
(no name from the file is ever imported or called), with ``cls.__new__`` and ``__setstate__``
or the attributes. Objects that are not part of the state (the world, the ledger connection,
the config) are written as named roots and handed back by the reader.

Example:
    >>> import numpy as np
    >>> tree = encode({"x": np.arange(3), "r": np.random.default_rng(1)}, roots={}, private=())
    >>> back = decode(tree, roots={})
    >>> back["x"].tolist(), back["r"].random() == np.random.default_rng(1).random()
    ([0, 1, 2], True)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Every class a checkpoint may hold; anything else is refused when saving.
CLASSES = {
    name: name
    for name in (
        "auction.bidders.base:Budget",
        "auction.bidders.shading:ShadingBidder",
        "auction.bidders.truthful:TruthfulBidder",
        "auction.bidders.pacing:PacingBidder",
        "auction.bidders.bandit:Exp3Bidder",
        "auction.bidders.throttle:Throttle",
        "economy.ctr_estimator:CategoryCTR",
        "economy.market:StepMetrics",
        "economy.lm_agents:LMScorer",
        "economy.federated:FederatedAgents",
        "agents.context:PrivateContext",
        "agents.context:Event",
        "agents.context:Impression",
        "agents.context:Budget",
        "agents.accountant:UserAccountant",
        "agents.accountant:Mechanism",
        "incentives.rewards:RewardPolicy",
    )
}
# Classes whose objects are the devices' private state (written to the private part).
PRIVATE = ("economy.lm_agents:LMScorer", "economy.ctr_estimator:CategoryCTR")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class StateCodecError(ValueError):
    """The state holds something a checkpoint cannot write, or a file is not a checkpoint."""


def _name(obj: object) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


@dataclass
class Encoded:
    """One part of an encoded state: a JSON-able tree and its arrays by key."""

    tree: Any = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class _Encoder:
    def __init__(self, roots: dict[str, object], private: tuple[str, ...]) -> None:
        self.roots = {id(v): k for k, v in roots.items()}
        self.private = private
        self.memo: dict[int, Any] = {}
        self.keep: list[object] = []  # keeps encoded objects alive, so ids stay unique
        self.records: list[dict[str, Any]] = []
        self.parts = {"server": Encoded(), "private": Encoded()}

    def array(self, a: np.ndarray, part: str) -> dict[str, Any]:
        if a.dtype.hasobject:
            raise StateCodecError("object arrays cannot be checkpointed")
        if id(a) in self.memo:  # one array held twice stays one array
            key, where = self.memo[id(a)]
            return {"__nd__": key, "part": where}
        arrays = self.parts[part].arrays
        key = f"{part[0]}{len(arrays)}"
        arrays[key] = a
        self.memo[id(a)] = (key, part)
        self.keep.append(a)
        return {"__nd__": key, "part": part}

    def obj(self, value: object, part: str) -> dict[str, int]:
        if id(value) in self.memo:
            return {"__obj__": self.memo[id(value)]}
        name = _name(value)
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            record: dict[str, Any] = {"rng": state["bit_generator"], "state": None}
        elif name in CLASSES:
            record = {"cls": name, "state": None}
        else:
            raise StateCodecError(f"a checkpoint cannot hold a {name} (allowed: {sorted(CLASSES)})")
        part = "private" if name in self.private else part
        record["part"] = part
        index = len(self.records)
        self.memo[id(value)] = index
        self.keep.append(value)
        self.records.append(record)
        if "rng" in record:
            record["state"] = self.walk(state, part)
        else:
            custom = hasattr(type(value), "__setstate__")
            raw = value.__getstate__() if custom else vars(value)
            record["state"] = self.walk(raw, part)
        return {"__obj__": index}

    def walk(self, value: object, part: str) -> Any:
        if id(value) in self.roots:
            return {"__root__": self.roots[id(value)]}
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.ndarray):
            return self.array(value, part)
        if isinstance(value, np.generic):
            return self.array(np.asarray(value), part) | {"scalar": True}
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [self.walk(v, part) for v in value]}
        if isinstance(value, list):
            return [self.walk(v, part) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.walk(v, part) for k, v in value.items()}
            return {"__map__": [[self.walk(k, part), self.walk(v, part)] for k, v in value.items()]}
        return self.obj(value, part)


def encode(
    value: object, *, roots: dict[str, object], private: tuple[str, ...] = PRIVATE
) -> dict[str, Encoded]:
    """``{"server": Encoded, "private": Encoded}`` of ``value`` (module doc).

    Args:
        value: the object graph (e.g. a ``MarketState``'s fields).
        roots: objects written by name only (handed back to :func:`decode`).
        private: class names (``module:qualname``) whose objects go to the private part.

    Raises:
        StateCodecError: an object of a class not in :data:`CLASSES`.
    """
    enc = _Encoder(roots, private)
    top = enc.walk(value, "server")
    server = [r if r["part"] == "server" else None for r in enc.records]
    hidden = {str(i): r for i, r in enumerate(enc.records) if r["part"] == "private"}
    enc.parts["server"].tree = {"value": top, "records": server}
    enc.parts["private"].tree = {"records": hidden}
    return enc.parts


class _Decoder:
    def __init__(self, parts: dict[str, Encoded], roots: dict[str, object]) -> None:
        self.parts, self.roots = parts, roots
        records = list(parts["server"].tree["records"])
        for i, record in parts["private"].tree.get("records", {}).items():
            records[int(i)] = record
        self.records = records
        self.built: dict[int, object] = {}

    def obj(self, index: int) -> object:
        if index in self.built:
            return self.built[index]
        if not 0 <= index < len(self.records) or self.records[index] is None:
            raise StateCodecError(f"object {index} is missing (is the private part there?)")
        record = self.records[index]
        if "rng" in record:
            if record["rng"] not in _BIT_GENERATORS:
                raise StateCodecError(f"unknown bit generator {record['rng']!r}")
            gen = np.random.Generator(getattr(np.random, record["rng"])())
            self.built[index] = gen
            gen.bit_generator.state = self.walk(record["state"])
            return gen
        name = record.get("cls")
        if name not in CLASSES:
            raise StateCodecError(f"a checkpoint cannot hold a {name!r}")
        module, attr = CLASSES[name].split(":")
        cls = getattr(importlib.import_module(module), attr)
        obj = cls.__new__(cls)
        self.built[index] = obj
        state = self.walk(record["state"])
        if hasattr(cls, "__setstate__"):  # the same test as the encoder's
            obj.__setstate__(state)
        else:
            vars(obj).update(state)
        return obj

    def walk(self, tree: Any) -> Any:
        if isinstance(tree, list):
            return [self.walk(v) for v in tree]
        if not isinstance(tree, dict):
            return tree
        if "__root__" in tree:
            if tree["__root__"] not in self.roots:
                raise StateCodecError(f"unknown root {tree['__root__']!r}")
            return self.roots[tree["__root__"]]
        if "__obj__" in tree:
            return self.obj(int(tree["__obj__"]))
        if "__nd__" in tree:
            arrays = self.parts[tree["part"]].arrays
            if tree["__nd__"] not in arrays:
                raise StateCodecError(f"array {tree['__nd__']!r} is missing")
            a = arrays[tree["__nd__"]]
            return a[()] if tree.get("scalar") else a
        if "__tuple__" in tree:
            return tuple(self.walk(v) for v in tree["__tuple__"])
        if "__map__" in tree:
            return {self.walk(k): self.walk(v) for k, v in tree["__map__"]}
        return {k: self.walk(v) for k, v in tree.items()}


def decode(parts: dict[str, Encoded] | Encoded, *, roots: dict[str, object]) -> Any:
    """The object graph of :func:`encode`'s parts, with ``roots`` put back by name.

    Raises:
        StateCodecError: a part is missing or names something not in :data:`CLASSES`.
    """
    if isinstance(parts, Encoded):
        parts = {"server": parts, "private": Encoded({"records": {}})}
    try:
        return _Decoder(parts, roots).walk(parts["server"].tree["value"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, StateCodecError):
            raise
        raise StateCodecError(f"not a checkpoint state: {type(exc).__name__}: {exc}") from None
