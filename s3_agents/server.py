"""Retrieval server compatible with the s3 / Search-R1 ``POST /retrieve`` API.

Request body: ``{"queries": [str, ...], "topk": int | null, "return_scores": bool}``.
Reply: ``{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}``, or with
``return_scores`` false, ``{"result": [[{"id", "contents"}, ...], ...]}``. ``GET /health`` reports
the backend and passage count.

Queries of concurrent requests are gathered into one batched index call (up to
``max_batch`` queries), which serialises access to the index and amortises query embedding.
Limits on queries per request, ``topk`` and body size are answered with a 4xx and a message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictBool, StrictInt, StrictStr, ValidationError

from s3_agents.retrievers.base import Retriever
from s3_agents.types import Passage

__all__ = ["ServerLimits", "RetrieveRequest", "create_app", "serve", "check_api_key"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for.

    Attributes:
        max_queries: Queries per request.
        max_topk: Largest ``topk``.
        max_body_bytes: Largest request body.
        max_query_chars: Longest single query.
        default_topk: ``topk`` used when the request sends null or omits it.
        max_batch: Queries per batched index call (across concurrent requests).
    """

    max_queries: int = 512
    max_topk: int = 100
    max_body_bytes: int = 1_000_000
    max_query_chars: int = 4_000
    default_topk: int = 3
    max_batch: int = 256

    def __post_init__(self) -> None:
        for name in ("max_queries", "max_topk", "max_body_bytes", "max_query_chars", "default_topk", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.default_topk > self.max_topk:
            raise ValueError("default_topk must not exceed max_topk")


class RetrieveRequest(BaseModel):
    """Body of ``POST /retrieve`` (the s3 / Search-R1 shape)."""

    queries: list[StrictStr]
    topk: StrictInt | None = None
    return_scores: StrictBool = False


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = JSONResponse({"detail": f"request body over the server limit of {self.limit} bytes"},
                               status_code=413)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await too_big(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


@dataclass
class _Job:
    queries: list[str]
    k: int
    future: asyncio.Future[list[list[Passage]]]


@dataclass
class _Batcher:
    """Gathers the queries of concurrent requests into batched ``retriever.search`` calls."""

    retriever: Retriever
    max_batch: int
    queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    batches: int = 0
    queries: int = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        future: asyncio.Future[list[list[Passage]]] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(queries, k, future))
        return await future

    async def _run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].queries)
            while size < self.max_batch and not self.queue.empty():
                job = self.queue.get_nowait()
                jobs.append(job)
                size += len(job.queries)
            flat = [q for job in jobs for q in job.queries]
            k = max(job.k for job in jobs)
            try:
                results = await asyncio.to_thread(self._search_chunked, flat, k)
            except Exception as err:  # each waiting request gets the error
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self.batches += 1
            self.queries += len(flat)
            offset = 0
            for job in jobs:
                part = results[offset:offset + len(job.queries)]
                offset += len(job.queries)
                if not job.future.done():
                    job.future.set_result([hits[:job.k] for hits in part])

    def _search_chunked(self, queries: list[str], k: int) -> list[list[Passage]]:
        out: list[list[Passage]] = []
        for lo in range(0, len(queries), self.max_batch):
            out.extend(self.retriever.search(queries[lo:lo + self.max_batch], k))
        return out


def _format(hits: list[Passage], return_scores: bool) -> list[dict[str, Any]]:
    if return_scores:
        return [{"document": p.to_document(), "score": p.score} for p in hits]
    return [p.to_document() for p in hits]


def check_api_key(api_key: str | None) -> None:
    """Refuse a key no client could send: empty, or not printable ASCII (HTTP headers carry ASCII).

    Raises:
        ValueError: Saying why.

    Example:
        >>> check_api_key("s3cret")
    """
    if api_key is not None and (not api_key or not api_key.isascii() or not api_key.isprintable()):
        raise ValueError("the API key must be printable ASCII: it travels in an HTTP header, which carries ASCII "
                         "only, so a key with other characters could never be matched")


def create_app(
    retriever: Retriever,
    *,
    api_key: str | None = None,
    limits: ServerLimits | None = None,
    info: dict[str, Any] | None = None,
    docs: bool = False,
) -> FastAPI:
    """The FastAPI application serving ``retriever``.

    Args:
        retriever: Any :class:`~s3_agents.retrievers.Retriever`.
        api_key: When set, ``/retrieve`` requires ``Authorization: Bearer <key>`` (or
            ``X-API-Key: <key>``); ``/health`` stays open. ASCII only (HTTP headers carry ASCII).
        limits: Request limits (defaults: :class:`ServerLimits`).
        info: Extra fields for ``/health`` (index name...). It is open to anyone: no filesystem paths.
        docs: Serve ``/docs``, ``/redoc`` and ``/openapi.json`` (off by default: they describe the
            server to anyone who asks, key or not).

    Raises:
        ValueError: If ``api_key`` is empty or not ASCII (no client could send it).

    Example:
        >>> import uvicorn                                          # doctest: +SKIP
        >>> uvicorn.run(create_app(retriever), host="127.0.0.1", port=3000)  # doctest: +SKIP
    """
    check_api_key(api_key)
    limits = limits or ServerLimits()
    batcher = _Batcher(retriever, limits.max_batch)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="s3-agents retrieval server", version="1", lifespan=lifespan,
                  **({} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}))
    app.add_middleware(_BodyLimit, limit=limits.max_body_bytes)
    health = {"status": "ok", "retriever": type(retriever).__name__, **(info or {})}
    try:
        health["passages"] = len(retriever)  # type: ignore[arg-type]
    except TypeError:
        pass

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not given or not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key "
                                "(send 'Authorization: Bearer <key>' or 'X-API-Key: <key>')")

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return {**health, "batches": batcher.batches, "queries_served": batcher.queries}

    @app.post("/retrieve", dependencies=[Depends(check_key)])
    async def retrieve(request: Request) -> dict[str, Any]:
        # Parsed by hand so that any content type works (curl -d sends form encoding).
        raw = await request.body()
        try:
            body = RetrieveRequest.model_validate_json(raw)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
            )
            raise HTTPException(status_code=422, detail=(
                f"bad request body ({problems}); expected "
                '{"queries": [str, ...], "topk": int, "return_scores": bool}')) from err
        k = limits.default_topk if body.topk is None else body.topk
        if not 1 <= k <= limits.max_topk:
            raise HTTPException(status_code=422, detail=f"topk must be between 1 and {limits.max_topk}, got {k}")
        if len(body.queries) > limits.max_queries:
            raise HTTPException(status_code=413, detail=(
                f"{len(body.queries)} queries in one request; the server limit is {limits.max_queries}"))
        for i, query in enumerate(body.queries):
            if len(query) > limits.max_query_chars:
                raise HTTPException(status_code=422, detail=(
                    f"queries[{i}] has {len(query)} characters; the limit is {limits.max_query_chars}"))
        if not body.queries:
            return {"result": []}
        try:
            results = await batcher.search(body.queries, k)
        except Exception as err:
            logger.exception("retrieval failed")
            raise HTTPException(status_code=500, detail=f"retrieval failed: {type(err).__name__}: {err}") from err
        return {"result": [_format(hits, body.return_scores) for hits in results]}

    return app


def serve(
    retriever: Retriever,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    api_key: str | None = None,
    limits: ServerLimits | None = None,
    info: dict[str, Any] | None = None,
    log_level: str = "info",
    docs: bool = False,
) -> None:
    """Run the retrieval server until interrupted (binds 127.0.0.1 unless told otherwise)."""
    import uvicorn

    app = create_app(retriever, api_key=api_key, limits=limits, info=info, docs=docs)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
