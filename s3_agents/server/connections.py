"""How ``s3 serve`` and ``s3 mcp`` hold connections: a cap, a header timeout, and a log that cannot flood.

uvicorn bounds requests (``limit_concurrency``) and idle keep-alive connections (``timeout_keep_alive``), but not a
connection that never sends a request: enough of them use up the process's file descriptors, after which every
``accept()`` fails and asyncio logs a traceback for each try, thousands a second. Here:

* a connection past ``max_connections`` (kept below the open-file limit) is closed as soon as it is accepted;
* a connection that has not sent a whole request head ``header_timeout`` seconds after it opened (or after its
  last response) is closed;
* the event loop reports a failing ``accept()`` at most once every ten seconds, with a count.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from s3_agents.config import ConnectionLimits

__all__ = ["GuardedH11Protocol", "connection_cap", "quiet_accept_errors", "uvicorn_config", "run_uvicorn"]

logger = logging.getLogger("s3_agents.server")

_FD_RESERVE = 64
"""File descriptors kept free for what is not a client connection: the index, log files, the upstream."""


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to fit the process's open-file limit (minus a reserve).

    Example:
        >>> connection_cap(10)
        10
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - _FD_RESERVE))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a header timeout (set on a subclass by
    :func:`run_uvicorn`)."""

    max_connections = 1_000
    header_timeout = 10.0
    _refused_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            now = time.monotonic()
            if now - GuardedH11Protocol._refused_at > 10:
                GuardedH11Protocol._refused_at = now
                logger.warning("%d connections open (the cap): closing new ones until some end",
                               self.max_connections)
            transport.close()
            return
        self._await_head()

    def _await_head(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._head_too_late)

    def _cancel_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()  # type: ignore[union-attr]
            self._header_timer = None

    def _head_too_late(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete   # no request under way
        if waiting and not self.transport.is_closing():
            self.timeout_keep_alive_handler()                           # closes it as an idle keep-alive

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 10.0) -> None:
    """Make ``loop`` log a failing ``accept()`` (out of file descriptors) once per ``every`` seconds, with the
    number of failures since, instead of a traceback per try; other errors go to the handler it had."""
    previous = loop.get_exception_handler()
    state = {"last": float("-inf"), "count": 0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != "socket.accept() out of system resource":
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        state["count"] += 1
        now = time.monotonic()
        if now - state["last"] >= every:
            logger.error("cannot accept connections: %s (%d time(s) in the last %g s); lower --max-connections "
                         "or raise the open-file limit (ulimit -n)", context.get("exception"), state["count"], every)
            state["last"], state["count"] = now, 0

    loop.set_exception_handler(handler)


def uvicorn_config(app: Any, *, host: str, port: int, limits: ConnectionLimits, log_level: str = "info",
                   log_config: dict[str, Any] | None = None) -> Any:
    """uvicorn's ``Config`` for ``app``, its connections bounded by ``limits``."""
    import uvicorn

    cap = connection_cap(limits.max_connections)
    protocol = type("Guarded", (GuardedH11Protocol,), {"max_connections": cap,
                                                       "header_timeout": limits.header_timeout})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol,
                          limit_concurrency=cap + 1,  # uvicorn answers 503 to requests past it
                          timeout_keep_alive=limits.keep_alive_timeout,
                          **({"log_config": log_config} if log_config is not None else {}))


def run_uvicorn(app: Any, *, host: str, port: int, limits: ConnectionLimits, log_level: str = "info",
                log_config: dict[str, Any] | None = None) -> None:
    """Serve ``app`` with uvicorn until interrupted, connections bounded by ``limits``.

    Example:
        >>> run_uvicorn(app, host="127.0.0.1", port=3000, limits=ConnectionLimits())   # doctest: +SKIP
    """
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, limits=limits, log_level=log_level,
                                           log_config=log_config))

    async def main() -> None:
        quiet_accept_errors(asyncio.get_running_loop())
        await server.serve()

    asyncio.run(main())
