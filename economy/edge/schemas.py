"""Request bodies of the node's endpoints, decoded and validated in one pass (msgspec Structs,
compiled decoders: the parse of a 100-candidate body is the largest stage of a decision).

Strict: unknown fields, wrong types (no string for a number, no number for a string, no bool
for a number), NaN or infinite numbers (``NaN`` is not JSON; ``1e999`` is out of range) and
lists or strings beyond their bounds are refused, the field's path named as ``a.0.b``
(:class:`BodyError`). The first error found is reported.

>>> decode_decide(b'{"user": "u1", "query": {"limit": 3}}').query.limit
3
>>> try:
...     decode_decide(b'{"user": "u1", "candidates": [{"ad_id": "a", "text": "t", "bid": -1}]}')
... except BodyError as exc:
...     print(exc.status, exc.errors[0]["field"])
422 candidates.0.bid
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from agents.context import KIND_WEIGHTS

MAX_CANDIDATES = 1000
MAX_TEXT = 1000  # characters of an ad or event text
MAX_ID = 128  # characters of a user or ad id
_BIG = 1.7976931348623157e308  # the largest finite float64

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
Category = Annotated[str, Meta(max_length=MAX_ID)]
Finite = Annotated[float, Meta(ge=-_BIG, le=_BIG)]
Price = Annotated[float, Meta(ge=0.0, le=1e12)]
EventKind = Literal[tuple(KIND_WEIGHTS)]  # type: ignore[valid-type]
Limit = Annotated[int, Meta(ge=1, le=MAX_CANDIDATES)]


class _Body(Struct, forbid_unknown_fields=True, frozen=True):
    pass


class Candidate(_Body):
    """One ad to choose among: id, text, per-click bid (finite, >= 0), category, public prior."""

    ad_id: Id
    text: Text
    bid: Price
    category: Category = ""
    prior: Finite = 0.0


class Query(_Body):
    """A catalogue query: the first ``limit`` ads of ``category`` (None: any category)."""

    category: Category | None = None
    limit: Limit = 100


class DecideRequest(_Body):
    """``POST /decide``: a user, the slot to fill, and exactly one source of candidates:
    ``candidates`` (full ads), ``ad_ids`` (ads of the node's catalogue by id, at the
    catalogue's bids) or ``query`` (a catalogue query)."""

    user: Id
    slot: Id = "main"
    candidates: Annotated[list[Candidate], Meta(min_length=1, max_length=MAX_CANDIDATES)] | None = (
        None
    )
    ad_ids: Annotated[list[Id], Meta(min_length=1, max_length=MAX_CANDIDATES)] | None = None
    query: Query | None = None
    reserve: Price = 0.0

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.candidates, self.ad_ids, self.query)]
        if sum(given) != 1:
            raise ValueError("give exactly one of 'candidates', 'ad_ids' and 'query'")
        if self.candidates is not None:
            if len({c.ad_id for c in self.candidates}) != len(self.candidates):
                raise ValueError("candidates: ad_id values must be unique")
        elif self.ad_ids is not None and len(set(self.ad_ids)) != len(self.ad_ids):
            raise ValueError("ad_ids: values must be unique")


class EventRequest(_Body):
    """``POST /events``: an event of a user's, kept in that user's context on the node."""

    user: Id
    kind: EventKind
    text: Text
    time: Finite  # seconds (any origin; only differences between a user's events count)
    category: Category = ""


class BodyError(ValueError):
    """A request body refused: the HTTP status (400 not JSON / not an object, 422 a wrong
    field) and the errors as ``[{"field", "message"}]`` (field ``""``: the body as a whole)."""

    def __init__(self, status: int, errors: list[dict[str, str]]) -> None:
        self.status, self.errors = status, errors
        named = (f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        super().__init__("; ".join(named))


_DECIDE = msgspec.json.Decoder(DecideRequest)
_EVENT = msgspec.json.Decoder(EventRequest)
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]*)`")


def _field(path: str, message: str) -> str:
    """``.candidates[0].bid`` -> ``candidates.0.bid``; a missing or unknown field's own name
    appended (msgspec places those errors at the enclosing object)."""
    parts = [p for p in re.split(r"[.\[\]]+", path) if p]
    named = _NAMED.search(message)
    if named:
        parts.append(named["name"])
    return ".".join(parts)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        if not isinstance(exc, msgspec.ValidationError):
            raise BodyError(400, [{"field": "", "message": "the body is not valid JSON"}]) from None
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any string
        path, msg = match["path"] or "", match["msg"]
        if not path and msg.startswith("Expected `object`"):
            not_object = {"field": "", "message": "the body must be a JSON object"}
            raise BodyError(400, [not_object]) from None
        raise BodyError(422, [{"field": _field(path, msg), "message": msg}]) from None


def decode_decide(body: bytes) -> DecideRequest:
    """The validated ``POST /decide`` body.

    Raises:
        BodyError: 400 (not JSON, not an object) or 422 (a field, named).
    """
    return _decode(_DECIDE, body)  # type: ignore[no-any-return]


def decode_event(body: bytes) -> EventRequest:
    """The validated ``POST /events`` body.

    Raises:
        BodyError: 400 (not JSON, not an object) or 422 (a field, named).
    """
    return _decode(_EVENT, body)  # type: ignore[no-any-return]
