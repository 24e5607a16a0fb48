"""Request bodies of the node's endpoints, validated strictly (pydantic): unknown fields, wrong
types (no string for a number, no number for a string), NaN or infinite numbers and lists
beyond their bounds are refused with the field's path named."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.context import KIND_WEIGHTS

MAX_CANDIDATES = 1000
MAX_TEXT = 1000  # characters of an ad or event text
MAX_ID = 128  # characters of a user or ad id

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
Category = Annotated[str, Field(max_length=MAX_ID)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]
EventKind = Literal[tuple(KIND_WEIGHTS)]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
    limit: int = Field(100, ge=1, le=MAX_CANDIDATES)


class DecideRequest(_Body):
    """``POST /decide``: a user, the slot to fill, and either candidates or a catalogue query."""

    user: Id
    slot: Id = "main"
    candidates: list[Candidate] | None = Field(None, min_length=1, max_length=MAX_CANDIDATES)
    query: Query | None = None
    reserve: Price = 0.0

    @model_validator(mode="after")
    def _one_source(self) -> DecideRequest:
        if (self.candidates is None) == (self.query is None):
            raise ValueError("give exactly one of 'candidates' and 'query'")
        if self.candidates is not None:
            ids = [c.ad_id for c in self.candidates]
            if len(set(ids)) != len(ids):
                raise ValueError("candidates: ad_id values must be unique")
        return self


class EventRequest(_Body):
    """``POST /events``: an event of a user's, kept in that user's context on the node."""

    user: Id
    kind: EventKind
    text: Text
    time: Finite  # seconds (any origin; only differences between a user's events count)
    category: Category = ""
