"""The user's private context: shopping events, the local click log and per-domain budgets.

Events (views, carts, purchases, searches, clicks, friends' shares received through gossip)
carry a timestamp in seconds and a category. A category listed in ``sensitive`` (e.g.
``{"health": 1.0}``) is a sensitive domain with its own epsilon budget: its events are left
out of scoring and of the model's text summary unless ``use_sensitive=True``, and training on
its clicks spends that domain's budget as well as the agent's.

An event's weight decays with age relative to the newest event (``0.5 ** (age / half_life)``)
and scales with its kind (a purchase says more than a view); no wall clock is read, so
replays give identical weights.

The context never leaves the device: nothing in the package's public return values contains
it; ``save``/``load`` persist it to a local JSON file (written atomically).

Example:
    >>> ctx = PrivateContext(sensitive={"health": 1.0})
    >>> ctx.add("purchase", "trail running shoes", time=0.0, category="sport")
    0
    >>> ctx.summary()
    'purchased: trail running shoes'
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import AgentError, BudgetExhaustedError

KIND_WEIGHTS = {
    "view": 1.0,
    "search": 1.5,
    "share": 1.0,
    "click": 2.0,
    "cart": 2.5,
    "purchase": 3.0,
}
_VERBS = {
    "view": "viewed",
    "search": "searched for",
    "share": "a friend shared",
    "click": "clicked",
    "cart": "added to cart",
    "purchase": "purchased",
}


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (a temporary file, then a rename), so
    a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Event:
    """One private event. ``time`` in seconds; ``source`` is the friend of a ``share``."""

    event_id: int
    kind: str
    text: str
    time: float
    category: str = ""
    source: str = ""


@dataclass(frozen=True)
class Impression:
    """One shown ad in the local click log: ``clicked`` is 0 or 1; ``prior`` is the exchange's
    public prior of the ad when it was shown (see :class:`agents.Ad`)."""

    ad_id: str
    text: str
    category: str
    clicked: int
    time: float
    prior: float = 0.0


@dataclass
class Budget:
    """An epsilon budget: ``spent`` never exceeds ``epsilon``."""

    epsilon: float
    spent: float = 0.0

    @property
    def remaining(self) -> float:
        """Epsilon left to spend (an unlimited budget stays unlimited, even after runs that
        spent infinite epsilon without noise)."""
        if self.epsilon == math.inf:
            return math.inf
        return max(0.0, self.epsilon - self.spent)

    def spend(self, amount: float, what: str) -> None:
        """Charge ``amount``; :class:`BudgetExhaustedError` if it does not fit."""
        if amount > self.remaining + 1e-12:
            raise BudgetExhaustedError(
                f"{what}: epsilon {amount:.3g} exceeds the remaining budget {self.remaining:.3g}"
            )
        self.spent += amount


class PrivateContext:
    """A per-user store of events and clicks, kept on the device.

    Args:
        sensitive: sensitive domain (category) -> its epsilon budget, each > 0.
        half_life: seconds after which an event counts half, > 0.
        max_events: newest events kept (older ones are dropped), >= 1.
        max_clicks: newest impressions kept in the click log, >= 1.
        use_sensitive: whether sensitive events count in scoring and the summary.
    """

    def __init__(
        self,
        *,
        sensitive: Mapping[str, float] | None = None,
        half_life: float = 7 * 86400.0,
        max_events: int = 200,
        max_clicks: int = 10_000,
        use_sensitive: bool = False,
    ) -> None:
        if not half_life > 0:
            raise AgentError(f"half_life must be > 0 seconds, got {half_life}")
        if max_events < 1 or max_clicks < 1:
            raise AgentError(
                f"max_events and max_clicks must be >= 1, got {max_events}, {max_clicks}"
            )
        for domain, eps in (sensitive or {}).items():
            if not eps > 0:
                raise AgentError(f"sensitive[{domain!r}] budget must be > 0, got {eps}")
        self.budgets = {d: Budget(float(e)) for d, e in (sensitive or {}).items()}
        self.half_life, self.max_events, self.max_clicks = half_life, max_events, max_clicks
        self.use_sensitive = use_sensitive
        self.events: list[Event] = []
        self.clicks: list[Impression] = []
        self.version = 0  # bumped on every change to the events: scoring caches key on it
        self._next_id = 0

    def add(self, kind: str, text: str, time: float, category: str = "", source: str = "") -> int:
        """Record an event and return its id. ``kind`` is one of :data:`KIND_WEIGHTS`."""
        if kind not in KIND_WEIGHTS:
            raise AgentError(f"kind must be one of {sorted(KIND_WEIGHTS)}, got {kind!r}")
        if not isinstance(text, str) or not text:
            raise AgentError("text must be a non-empty string")
        if not math.isfinite(time):
            raise AgentError(f"time must be finite seconds, got {time}")
        self.events.append(Event(self._next_id, kind, text, float(time), category, source))
        del self.events[: -self.max_events]
        self._next_id += 1
        self.version += 1
        return self._next_id - 1

    def record_impression(
        self,
        ad_id: str,
        text: str,
        clicked: int,
        time: float,
        category: str = "",
        prior: float = 0.0,
    ) -> None:
        """Log a shown ad; a click is also added as a ``click`` event."""
        self.record_impressions([ad_id], [text], [clicked], [time], [category], [prior])

    def record_impressions(
        self,
        ad_ids: Sequence[str],
        texts: Sequence[str],
        clicked: Sequence[int] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        categories: Sequence[str],
        priors: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Log shown ads in order, as :meth:`record_impression` one after the other would (the
        same click log, events, ids and version), checking the numbers once for all of them.

        ``clicked`` 0 or 1, ``times`` in seconds, ``priors`` finite (default 0), each (n,);
        checked in plain Python (a user sees a handful of impressions per step) before anything
        is written.
        """
        n = len(ad_ids)
        priors = [0.0] * n if priors is None else priors
        if not len(texts) == len(clicked) == len(times) == len(categories) == len(priors) == n:
            raise AgentError(
                "ad_ids, texts, clicked, times, categories and priors differ in length"
            )
        bad = [k for k in clicked if k not in (0, 1)]
        if bad:
            raise AgentError(f"clicked must be 0 or 1, got {bad[0]}")
        bad = [p for p in priors if not math.isfinite(p)]
        if bad:
            raise AgentError(f"prior must be a finite number, got {bad[0]}")
        bad = [t for t in times if not math.isfinite(t)]
        if bad:
            raise AgentError(f"time must be finite seconds, got {bad[0]}")
        if not all(isinstance(t, str) and t for t in texts):
            raise AgentError("texts must be non-empty strings")
        rows = zip(ad_ids, texts, categories, clicked, times, priors, strict=True)
        new = [Impression(a, t, c, int(k), float(tm), float(p)) for a, t, c, k, tm, p in rows]
        self.clicks.extend(new)
        del self.clicks[: -self.max_clicks]
        for row in new:
            if row.clicked:
                self.add("click", row.text, row.time, row.category)

    def is_sensitive(self, category: str) -> bool:
        """Whether ``category`` is a sensitive domain."""
        return category in self.budgets

    def scored_events(self) -> list[Event]:
        """The events that count in scoring (sensitive ones only with ``use_sensitive``)."""
        if self.use_sensitive:
            return list(self.events)
        return [e for e in self.events if e.category not in self.budgets]

    def weights(self, events: list[Event]) -> np.ndarray:
        """(m,) weights of ``events``: kind weight x recency decay from the newest event."""
        if not events:
            return np.zeros(0)
        times = np.array([e.time for e in events])
        kinds = np.array([KIND_WEIGHTS[e.kind] for e in events])
        return kinds * 0.5 ** ((times.max() - times) / self.half_life)

    def summary(self, max_events: int = 10) -> str:
        """A short text of the newest scored events, for a language model's prompt."""
        recent = sorted(self.scored_events(), key=lambda e: e.time)[-max_events:]
        return "; ".join(f"{_VERBS[e.kind]}: {e.text}" for e in reversed(recent))

    def save(self, path: str | Path) -> Path:
        """Persist to a local JSON file atomically (temporary file, then rename)."""
        path = Path(path)
        payload = {
            "settings": {
                "half_life": self.half_life,
                "max_events": self.max_events,
                "max_clicks": self.max_clicks,
                "use_sensitive": self.use_sensitive,
            },
            "budgets": {d: asdict(b) for d, b in self.budgets.items()},
            "events": [asdict(e) for e in self.events],
            "clicks": [asdict(c) for c in self.clicks],
            "next_id": self._next_id,
        }
        return write_json_atomic(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> PrivateContext:
        """Read a context written by :meth:`save`."""
        payload = json.loads(Path(path).read_text())
        ctx = cls(**payload["settings"])
        ctx.budgets = {d: Budget(**b) for d, b in payload["budgets"].items()}
        ctx.events = [Event(**e) for e in payload["events"]]
        ctx.clicks = [Impression(**c) for c in payload["clicks"]]
        ctx._next_id = payload["next_id"]
        ctx.version = 1
        return ctx
