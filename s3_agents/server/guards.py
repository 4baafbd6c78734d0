"""ASGI guards in front of the retrieval server: request bodies and ``Host`` headers.

- :class:`BodyGuard` refuses bodies over the size limit (declared or streamed) with 413, and
  bodies not complete within the read deadline with 408; an abandoned body (deadline passed, or
  the client hung up mid-body) is logged as one line.
- :class:`HostGuard` answers 400 to a ``Host`` header outside the allow-list. A server bound to
  loopback answers only to loopback names, so that a web page cannot reach it through DNS
  rebinding (a hostile name that resolves to 127.0.0.1).
- :class:`KeyGuard` answers 401 to a request without the API key (``s3 serve --api-key``, ``s3 mcp
  --api-key``), comparing with :func:`key_matches`.

Why not Starlette's ``TrustedHostMiddleware`` for the ``Host`` check: it answers a bare "Invalid host header",
where an operator needs the names served and the option that adds one (``--allowed-host``); and the Starlette
releases that ``fastapi>=0.110`` admits took the name as everything before the first ``:``, so they accepted
``127.0.0.1:38101, evil.com`` (strict parsing came with Starlette's 2026 rework of ``Host`` parsing).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["LOOPBACK_HOSTS", "BodyGuard", "HostGuard", "KeyGuard", "host_name", "is_loopback", "served_hosts",
           "key_matches", "KEY_HELP"]

logger = logging.getLogger("s3_agents.server")

LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""Host names a loopback-bound server answers to by default."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name is this machine only (``127.x``, ``::1``, ``localhost``)."""
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def served_hosts(host: str, allowed_hosts: Sequence[str] = ()) -> list[str]:
    """The ``Host`` names a server bound to ``host`` answers: bound to loopback, the loopback names plus
    ``allowed_hosts``; bound elsewhere, ``allowed_hosts`` when given, else any (``"*"``).

    Example:
        >>> served_hosts("127.0.0.1", ["box.lan"]), served_hosts("0.0.0.0")
        (['localhost', '127.0.0.1', '::1', 'box.lan'], ['*'])
    """
    if is_loopback(host):
        return [*LOOPBACK_HOSTS, *allowed_hosts]
    return list(allowed_hosts) or ["*"]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets, lower case; ``""`` (no name a server
    answers to) when the port part is not a port number.

    Example:
        >>> host_name("[::1]:3000"), host_name("LocalHost:80"), host_name("127.0.0.1")
        ('::1', 'localhost', '127.0.0.1')
        >>> host_name("127.0.0.1:3000, evil.com"), host_name("localhost:abc"), host_name("localhost:")
        ('', '', '')
    """
    header = header.strip().lower()
    if header.startswith("[") and "]" in header:
        name, _, rest = header[1:].partition("]")
        if not rest:
            return name
        if not rest.startswith(":"):
            return ""
        port = rest[1:]
    elif header.count(":") == 1:
        name, _, port = header.partition(":")
    else:
        return header
    return name if port.isascii() and port.isdigit() and len(port) <= 5 else ""


KEY_HELP = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
"""How a client sends the key, for the 401 messages."""


def key_matches(authorization: str, x_api_key: str, api_key: str) -> bool:
    """Whether a request's ``Authorization: Bearer`` (or else ``X-API-Key``) header holds ``api_key``.

    The comparison takes the same time wherever the strings differ.

    Example:
        >>> key_matches("Bearer s3cret", "", "s3cret"), key_matches("", "s3cret", "s3cret")
        (True, True)
        >>> key_matches("", "", "s3cret"), key_matches("Bearer wrong", "s3cret", "s3cret")
        (False, False)
    """
    given = authorization[7:] if authorization.lower().startswith("bearer ") else x_api_key
    return bool(given) and secrets.compare_digest(given.encode("latin-1", "replace"), api_key.encode())


class KeyGuard:
    """Answer 401 unless an HTTP request carries ``api_key`` (see :func:`key_matches`); ``open_paths`` need none."""

    def __init__(self, app: Any, api_key: str, open_paths: Sequence[str] = ()) -> None:
        self.app = app
        self.api_key = api_key
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if key_matches(headers.get(b"authorization", b"").decode("latin-1"),
                       headers.get(b"x-api-key", b"").decode("latin-1"), self.api_key):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": f"missing or wrong API key ({KEY_HELP})"}, status_code=401,
                           headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown client"


class HostGuard:
    """Answer 400 unless the request's ``Host`` is in ``allowed`` (``"*"`` allows any)."""

    def __init__(self, app: Any, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        detail = (f"Host {header[:100]!r} is not served here; allowed: {', '.join(sorted(self.allowed))} "
                  "(add names with --allowed-host)")
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class _BodyAbandoned(Exception):
    def __init__(self, received: int, timed_out: bool) -> None:
        self.received = received
        self.timed_out = timed_out


class BodyGuard:
    """Bound request bodies in size (``limit`` bytes) and in time (``timeout`` seconds in all)."""

    def __init__(self, app: Any, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and b"transfer-encoding" in headers:
            # RFC 9112, 6.1: a request framed both ways may be smuggling another one; refuse it and close.
            await JSONResponse({"detail": "a request may not carry both Content-Length and Transfer-Encoding"},
                               status_code=400, headers={"Connection": "close"})(scope, receive, send)
            return
        too_big = JSONResponse({"detail": f"request body over the server limit of {self.limit} bytes"},
                               status_code=413)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        received, complete, started = 0, False, False

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in; later calls only wait for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _BodyAbandoned(received, timed_out=True) from None
            if message["type"] == "http.disconnect":
                raise _BodyAbandoned(received, timed_out=False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await too_big(scope, receive, send)
        except _BodyAbandoned as abandoned:
            how = (f"did not finish its request body within {self.timeout:g} s" if abandoned.timed_out
                   else "hung up before finishing its request body")
            logger.warning("%s %s (%d bytes received); request dropped", _client(scope), how, abandoned.received)
            if abandoned.timed_out and not started:
                await JSONResponse({"detail": f"request body not received within {self.timeout:g} s"},
                                   status_code=408, headers={"Connection": "close"})(scope, receive, send)
