"""The retrieval server: FastAPI application, limits and ``serve``.

Request body: ``{"queries": [str, ...], "topk": int | null, "return_scores": bool}``.
Reply: ``{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}``, or with
``return_scores`` false, ``{"result": [[{"id", "contents"}, ...], ...]}``. ``GET /health`` reports
the backend and passage count.

Every request is bounded: queries, characters, ``topk`` and body size (4xx with a message), the
time to send the body (408) and the time to be served (503 when it never got a turn, 504 when it
was too large to finish). Concurrent requests share index calls through a fair
:class:`~s3_agents.server.scheduler.Scheduler`; each succeeds or fails on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, StrictBool, StrictInt, StrictStr, ValidationError

from s3_agents.config import ServerLimits
from s3_agents.errors import RetrieverRefusedError, RetrieverUnavailableError
from s3_agents.retrievers.base import Retriever
from s3_agents.server.guards import LOOPBACK_HOSTS, BodyGuard, HostGuard, KeyGuard, served_hosts
from s3_agents.server.scheduler import Scheduler
from s3_agents.types import Passage

__all__ = ["RetrieveRequest", "create_app", "serve", "check_api_key"]

_OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
"""What a server with an API key answers without it (the docs pages only where ``docs=True`` serves them)."""

logger = logging.getLogger("s3_agents.server")


class RetrieveRequest(BaseModel):
    """Body of ``POST /retrieve`` (the s3 / Search-R1 shape)."""

    queries: list[StrictStr]
    topk: StrictInt | None = None
    return_scores: StrictBool = False


def _document(hits: list[Passage]) -> list[dict[str, Any]]:
    return [p.to_document() for p in hits]


def _scored(hits: list[Passage]) -> list[dict[str, Any]]:
    return [{"document": p.to_document(), "score": p.score} for p in hits]


def _http_error(err: Exception) -> HTTPException:
    """What the client hears when its queries failed: an upstream's 4xx stays a 4xx."""
    if isinstance(err, RetrieverRefusedError):
        # The upstream's key is the proxy's business, not the client's: that is a gateway error.
        status = err.status if 400 <= err.status < 500 and err.status not in (401, 403, 407) else 502
        return HTTPException(status_code=status, detail=(
            f"the upstream retrieval server refused the request (HTTP {err.status}): {err.detail}"))
    if isinstance(err, RetrieverUnavailableError):  # its URL stays in the log, not in the reply
        logger.warning("upstream unavailable: %s", err)
        return HTTPException(status_code=503, detail="the upstream retrieval server did not answer; try again later",
                             headers={"Retry-After": "5"})
    logger.error("retrieval failed: %s: %s", type(err).__name__, err, exc_info=err)
    return HTTPException(status_code=500, detail=f"retrieval failed: {type(err).__name__}: {err}")


def check_api_key(api_key: str | None) -> None:
    """Refuse a key no client could send: empty, not printable ASCII (HTTP headers carry ASCII), or with
    leading or trailing whitespace (HTTP strips it from a header's value).

    Raises:
        ValueError: Saying why.

    Example:
        >>> check_api_key("s3cret")
    """
    if api_key is not None and (not api_key or not api_key.isascii() or not api_key.isprintable()):
        raise ValueError("the API key must be printable ASCII: it travels in an HTTP header, which carries ASCII "
                         "only, so a key with other characters could never be matched")
    if api_key is not None and api_key != api_key.strip():
        raise ValueError("the API key must not start or end with whitespace: HTTP strips it from a header's value, "
                         "so such a key could never be matched")


def create_app(
    retriever: Retriever,
    *,
    api_key: str | None = None,
    limits: ServerLimits | None = None,
    info: dict[str, Any] | None = None,
    docs: bool = False,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
) -> FastAPI:
    """The FastAPI application serving ``retriever``.

    Args:
        retriever: Any :class:`~s3_agents.retrievers.Retriever`.
        api_key: When set, ``/retrieve`` requires ``Authorization: Bearer <key>`` (or
            ``X-API-Key: <key>``); ``/health`` stays open. ASCII only (HTTP headers carry ASCII).
        limits: Request limits and timeouts (defaults: :class:`ServerLimits`).
        info: Extra fields for ``/health`` (index name...). It is open to anyone: no filesystem paths.
        docs: Serve ``/docs``, ``/redoc`` and ``/openapi.json`` (off by default: they describe the
            server to anyone who asks, key or not).
        allowed_hosts: ``Host`` names answered (any port); others get 400. The default, loopback
            names only, suits a server bound to 127.0.0.1; ``["*"]`` answers any name.

    Raises:
        ValueError: If ``api_key`` is empty or not ASCII (no client could send it).

    Example:
        >>> import uvicorn                                          # doctest: +SKIP
        >>> uvicorn.run(create_app(retriever), host="127.0.0.1", port=3000)  # doctest: +SKIP
    """
    check_api_key(api_key)
    limits = limits or ServerLimits()
    scheduler = Scheduler(retriever, limits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    app = FastAPI(title="s3-agents retrieval server", version="1", lifespan=lifespan,
                  **({} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}))
    app.add_middleware(BodyGuard, limit=limits.max_body_bytes, timeout=limits.body_timeout)
    if api_key is not None:                 # only /retrieve needs it: what is open is listed, the rest is closed
        app.add_middleware(KeyGuard, api_key=api_key, open_paths=_OPEN_PATHS)
    app.add_middleware(HostGuard, allowed=list(allowed_hosts))  # added last: runs first
    health = {"status": "ok", "retriever": type(retriever).__name__, **(info or {})}
    try:
        health["passages"] = len(retriever)  # type: ignore[arg-type]
    except TypeError:
        pass

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return {**health, "batches": scheduler.index_calls, "queries_served": scheduler.queries_served}

    def parse(raw: bytes) -> tuple[RetrieveRequest, int]:
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
        total = sum(len(q) for q in body.queries)
        if total > limits.max_request_chars:
            raise HTTPException(status_code=413, detail=(
                f"{total} query characters in one request; the server limit is {limits.max_request_chars} "
                "(split the queries over several requests)"))
        return body, k

    @app.post("/retrieve")
    async def retrieve(request: Request) -> Response:
        # Parsed by hand so that any content type works (curl -d sends form encoding).
        body, k = parse(await request.body())
        parts: list[bytes] = []
        if body.queries:
            job = scheduler.job(body.queries, k, _scored if body.return_scores else _document)
            try:
                parts = await asyncio.wait_for(job.future, limits.request_timeout)
            except TimeoutError:
                raise _late(job.taken, len(body.queries), limits.request_timeout) from None
            except Exception as err:
                raise _http_error(err) from err
        return Response(b'{"result":[' + b",".join(parts) + b"]}", media_type="application/json")

    return app


def _late(started: int, total: int, timeout: float) -> HTTPException:
    """The answer to a request past its deadline: 503 when the server was busy (no turn at the index yet, or
    every query under way), 504 with advice only when the request's own size left queries waiting."""
    if not started:
        return HTTPException(status_code=503, headers={"Retry-After": "5"}, detail=(
            f"server busy: the request waited {timeout:g} s without a turn at the index; try again later"))
    if started == total:
        return HTTPException(status_code=503, headers={"Retry-After": "5"}, detail=(
            f"server busy: the index did not finish the request's {total} "
            f"{'query' if total == 1 else 'queries'} within {timeout:g} s; try again later"))
    return HTTPException(status_code=504, detail=(
        f"the request was not served within {timeout:g} s ({started} of {total} queries had started); "
        "send fewer or shorter queries per request"))


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with the server's own one-line messages in the same stream."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["s3_agents"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


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
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Run the retrieval server until interrupted (binds 127.0.0.1 unless told otherwise).

    ``Host`` names answered: bound to loopback, the loopback names plus ``allowed_hosts``; bound
    elsewhere, ``allowed_hosts`` when given, else any.
    """
    from s3_agents.server.connections import run_uvicorn

    hosts = served_hosts(host, allowed_hosts)
    limits = limits or ServerLimits()
    app = create_app(retriever, api_key=api_key, limits=limits, info=info, docs=docs, allowed_hosts=hosts)
    run_uvicorn(app, host=host, port=port, limits=limits, log_level=log_level, log_config=_log_config(log_level))
