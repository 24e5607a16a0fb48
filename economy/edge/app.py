"""The node's HTTP API as a Starlette application (served by uvicorn, see ``economy.serve``).

Endpoints (JSON in and out; request bodies in :mod:`.schemas`):

- ``POST /decide`` ``{"user", "slot", "candidates": [{"ad_id", "text", "bid", "category",
  "prior"}] | "ad_ids": [catalogue ids] | "query": {"category", "limit"}, "reserve"}`` ->
  ``{"ad_id", "price", "slot"}`` (``ad_id`` null when no bid clears the reserve). Nothing
  else: no scores, no context.
- ``POST /events`` ``{"user", "kind", "text", "time", "category"}`` -> ``{"seq"}``, answered
  only once the event is on disk (:class:`GroupCommit`); the user is created by its first one.
- ``GET /health`` -> ``{"status", "users", "events", "model"}``; ``GET /metrics``: Prometheus.

Errors: 400 (body not JSON), 404 (unknown user), 413 (body over 1 MiB), 422 (a field is
wrong, an id not in the catalogue), 503 (the store could not write an event: it is not
accepted), each as ``{"error": message, "errors": [{"field", "message"}]}`` naming the field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents import Ad, Decision
from auction import AuctionError

from .errors import EdgeError, UnknownAdError, UnknownUserError
from .metrics import CONTENT_TYPE, NodeMetrics
from .node import DecisionInput, EdgeNode
from .schemas import BodyError, Candidate, DecideRequest, decode_decide, decode_event
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


class DecisionBatcher:
    """Decisions asked in the same turn of the event loop go to the node together
    (:meth:`EdgeNode.decide_many`: one batched auction call); none waits on a timer, so a lone
    request costs one extra turn of the loop."""

    def __init__(self, node: EdgeNode, max_batch: int = 256) -> None:
        self.node, self.max_batch = node, max_batch
        self._queue: list[tuple[DecisionInput, asyncio.Future[Decision]]] = []
        self._scheduled = False

    async def decide(self, request: DecisionInput) -> Decision:
        """The decision for ``request`` (raises what refused it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._queue.append((request, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            results = self.node.decide_many([r for r, _ in batch])
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _columns(user: str, items: Sequence[Candidate | Ad], reserve: float) -> DecisionInput:
    """A decision's candidates as columns (request candidates or catalogue ads alike)."""
    return DecisionInput(
        user,
        [c.ad_id for c in items],
        [c.text for c in items],
        [c.bid for c in items],
        [c.prior for c in items],
        reserve,
    )


_ENCODE = msgspec.json.Encoder()


def _json(content: Any, status: int = 200) -> Response:
    """A JSON response, encoded by msgspec."""
    return Response(_ENCODE.encode(content), status, media_type="application/json")


def _problem(status: int, errors: list[dict[str, str]]) -> Response:
    return _json({"error": str(BodyError(status, errors)), "errors": errors}, status)


async def _read(request: Request) -> bytes | Response:
    """The request body, or the 413 response when it is over :data:`MAX_BODY` bytes."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        return _problem(413, [{"field": "", "message": f"body over {MAX_BODY} bytes"}])
    body = await request.body()
    if len(body) > MAX_BODY:
        return _problem(413, [{"field": "", "message": f"body over {MAX_BODY} bytes"}])
    return body


def make_app(node: EdgeNode, store: EventStore) -> Starlette:
    """The node's application over ``node`` (its users) and ``store`` (their events, already
    replayed into ``node``). The caller owns both and closes the store after serving."""
    metrics = NodeMetrics(node, store)
    commit = GroupCommit(store, node.apply)
    batcher = DecisionBatcher(node)

    def timed(
        name: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            response = await handler(request)
            metrics.observe(name, response.status_code, time.perf_counter() - start)
            return response

        return endpoint

    def ask(body: DecideRequest) -> DecisionInput:
        if body.candidates is not None:
            return _columns(body.user, body.candidates, body.reserve)
        if body.ad_ids is not None:
            return _columns(body.user, node.catalogue.pick(body.ad_ids), body.reserve)
        assert body.query is not None
        ads = node.catalogue.query(body.query.category, body.query.limit)
        return _columns(body.user, ads, body.reserve)

    async def decide(request: Request) -> Response:
        raw = await _read(request)
        if isinstance(raw, Response):
            return raw
        try:
            body = decode_decide(raw)
            decision = await batcher.decide(ask(body))
        except BodyError as exc:
            return _problem(exc.status, exc.errors)
        except UnknownUserError as exc:
            return _problem(404, [{"field": "user", "message": str(exc)}])
        except UnknownAdError as exc:
            return _problem(422, [{"field": f"ad_ids.{exc.index}", "message": str(exc)}])
        except AuctionError as exc:  # e.g. bids so small that bid x quality underflows
            field = next(
                k for k in ("candidates", "ad_ids", "query") if getattr(body, k) is not None
            )
            return _problem(422, [{"field": field, "message": str(exc)}])
        return _json({"ad_id": decision.winner, "price": decision.price, "slot": body.slot})

    async def events(request: Request) -> Response:
        raw = await _read(request)
        if isinstance(raw, Response):
            return raw
        try:
            body = decode_event(raw)
            stored = await commit.submit(msgspec.structs.asdict(body))
        except BodyError as exc:
            return _problem(exc.status, exc.errors)
        except EdgeError as exc:  # the disk refused: the event is not accepted
            return _problem(503, [{"field": "", "message": str(exc)}])
        return _json({"seq": stored.seq})

    async def health(request: Request) -> Response:
        return _json(
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
