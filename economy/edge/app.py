"""The node's HTTP API as a Starlette application (served by uvicorn, see ``economy.serve``).

Endpoints (JSON in and out; request bodies in :mod:`.schemas`):

- ``POST /decide`` ``{"user", "slot", "candidates": [{"ad_id", "text", "bid", "category",
  "prior"}] | "query": {"category", "limit"}, "reserve"}`` -> ``{"ad_id", "price", "slot"}``
  (``ad_id`` null when no bid clears the reserve). Nothing else: no scores, no context.
- ``POST /events`` ``{"user", "kind", "text", "time", "category"}`` -> ``{"seq"}``, answered
  only once the event is on disk (:class:`GroupCommit`); the user is created by its first one.
- ``GET /health`` -> ``{"status", "users", "events", "model"}``; ``GET /metrics``: Prometheus.

Errors: 400 (body not JSON), 404 (unknown user), 413 (body over 1 MiB), 422 (a field is
wrong), 503 (the store could not write an event: it is not accepted), each as
``{"error": message, "errors": [{"field", "message"}]}`` naming the field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auction import AuctionError

from .errors import EdgeError, UnknownUserError
from .metrics import CONTENT_TYPE, NodeMetrics
from .node import EdgeNode
from .schemas import DecideRequest, EventRequest
from .store import EventStore, StoredEvent

MAX_BODY = 1 << 20  # bytes of a request body


class GroupCommit:
    """Durable events in batches: events that arrive while a write is on disk wait for the
    next one, which stores them all with one fsync (in a worker thread, so decisions go on);
    each is applied to its user's context and acknowledged after its batch is durable, in
    arrival order."""

    def __init__(self, store: EventStore, apply: Callable[[StoredEvent], None]) -> None:
        self.store, self.apply = store, apply
        self._pending: list[tuple[dict[str, Any], asyncio.Future[StoredEvent]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, row: dict[str, Any]) -> StoredEvent:
        """Store ``row`` durably, apply it, and return it as stored."""
        future: asyncio.Future[StoredEvent] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                stored = await asyncio.to_thread(self.store.append, [r for r, _ in batch])
            except Exception as exc:  # nothing of the batch is stored: none is acknowledged
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for event, (_, future) in zip(stored, batch, strict=True):
                self.apply(event)
                future.set_result(event)


def _problem(status: int, errors: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(
        f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors
    )
    return JSONResponse({"error": message, "errors": errors}, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _parse(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The validated body, or the 4xx response that names what is wrong."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        return _problem(413, [{"field": "", "message": f"body over {MAX_BODY} bytes"}])
    body = await request.body()
    if len(body) > MAX_BODY:
        return _problem(413, [{"field": "", "message": f"body over {MAX_BODY} bytes"}])
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            return _problem(400, [{"field": "", "message": "the body is not valid JSON"}])
        if any(e["type"] == "model_type" and not e["loc"] for e in errors):
            return _problem(400, [{"field": "", "message": "the body must be a JSON object"}])
        return _problem(422, [{"field": _field(e["loc"]), "message": e["msg"]} for e in errors])


def make_app(node: EdgeNode, store: EventStore) -> Starlette:
    """The node's application over ``node`` (its users) and ``store`` (their events, already
    replayed into ``node``). The caller owns both and closes the store after serving."""
    metrics = NodeMetrics(node, store)
    commit = GroupCommit(store, node.apply)

    def timed(
        name: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            response = await handler(request)
            metrics.observe(name, response.status_code, time.perf_counter() - start)
            return response

        return endpoint

    async def decide(request: Request) -> Response:
        body = await _parse(request, DecideRequest)
        if isinstance(body, Response):
            return body
        assert isinstance(body, DecideRequest)
        try:
            if body.candidates is not None:
                cands = body.candidates
                decision = node.decide_columns(
                    body.user,
                    [c.ad_id for c in cands],
                    [c.text for c in cands],
                    [c.bid for c in cands],
                    [c.prior for c in cands],
                    reserve=body.reserve,
                )
            else:
                assert body.query is not None
                q = body.query
                decision = node.decide_query(body.user, q.category, q.limit, reserve=body.reserve)
        except UnknownUserError as exc:
            return _problem(404, [{"field": "user", "message": str(exc)}])
        except AuctionError as exc:  # e.g. bids so small that bid x quality underflows
            field = "candidates" if body.candidates is not None else "query"
            return _problem(422, [{"field": field, "message": str(exc)}])
        return JSONResponse({"ad_id": decision.winner, "price": decision.price, "slot": body.slot})

    async def events(request: Request) -> Response:
        body = await _parse(request, EventRequest)
        if isinstance(body, Response):
            return body
        try:
            stored = await commit.submit(body.model_dump())
        except EdgeError as exc:  # the disk refused: the event is not accepted
            return _problem(503, [{"field": "", "message": str(exc)}])
        return JSONResponse({"seq": stored.seq})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "users": node.users,
                "events": store.count,
                "model": node.model.version,
            }
        )

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/decide", timed("decide", decide), methods=["POST"]),
            Route("/events", timed("events", events), methods=["POST"]),
            Route("/health", timed("health", health), methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ]
    )
