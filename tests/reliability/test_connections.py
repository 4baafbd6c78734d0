"""Connections of `s3 serve` / `s3 mcp` (server finding 3 and smaller points of issue 25): a cap, a header timeout,
a quiet log when accept() fails, requests framed two ways, and the MCP tools' deadline and turns.

The app runs under uvicorn configured as the servers configure it (`uvicorn_config`), in a thread of this process.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import httpx
import pytest

from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus
from s3_agents.config import McpLimits, ServerLimits
from s3_agents.server import create_app
from s3_agents.server.connections import connection_cap, quiet_accept_errors
from tests.conftest import ThreadedServer


@pytest.fixture(scope="module")
def retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages[:30], HashingEmbedder(dim=64))


def _connect(server: ThreadedServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    time.sleep(0.1)                                  # accepted and counted before the next one
    return sock


def _closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closed ``sock`` within ``within`` seconds (reading what it sent first)."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_connections_past_the_cap_are_closed_and_idle_ones_time_out(retriever) -> None:
    limits = ServerLimits(max_connections=3, header_timeout=1.0)
    server = ThreadedServer(create_app(retriever, limits=limits), limits)
    try:
        idle = [_connect(server) for _ in range(3)]
        extra = _connect(server)
        assert _closed(extra, within=0.5)                       # past the cap: closed at once
        assert not _closed(idle[0], within=0.2)                 # under it: kept, for now
        dribbling = idle[1]
        dribbling.sendall(b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # a head that never ends
        assert all(_closed(sock, within=3) for sock in idle)    # no whole head within header_timeout: closed
        reply = httpx.post(server.url + "/retrieve", json={"queries": ["Gritia"], "topk": 1})
        assert reply.status_code == 200                         # the slots are free again
    finally:
        server.stop()
    assert connection_cap(10**9) < 10**9 and connection_cap(5) == 5   # never past the open-file limit


def test_a_request_with_both_content_length_and_transfer_encoding_is_refused_and_closed(retriever) -> None:
    server = ThreadedServer(create_app(retriever))
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        body = b'{"queries": ["Gritia"], "topk": 1}'
        sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                     % (len(body), len(body), body))
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(4096):                         # read to the end: the server closes
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400") and b"both Content-Length and Transfer-Encoding" in reply
    finally:
        server.stop()


def test_a_failing_accept_is_logged_once_per_interval_with_a_count(caplog) -> None:
    loop = asyncio.new_event_loop()
    others: list[str] = []
    loop.set_exception_handler(lambda _, context: others.append(context["message"]))
    try:
        quiet_accept_errors(loop, every=60)
        with caplog.at_level(logging.ERROR, logger="s3_agents.server"):
            for _ in range(2000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    (record,) = caplog.records
    assert "cannot accept connections" in record.getMessage() and "ulimit -n" in record.getMessage()
    assert others == ["something else"]                         # other errors still reach the handler they had


class _SlowSearcher:
    """An s3 searcher stand-in whose episodes take ``seconds``; records how many ran at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = self.peak = 0

    async def asearch(self, question: str) -> dict:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        return {"context": [], "queries": [question], "stop_reason": "search_complete"}


def test_mcp_searches_take_turns_and_end_busy_past_their_deadline(retriever) -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from s3_agents.server.mcp_server import create_mcp_server

    searcher = _SlowSearcher(0.4)
    server = create_mcp_server(searcher, retriever, limits=McpLimits(max_searches=2, request_timeout=1.0))

    async def five() -> list:
        return await asyncio.gather(*(server.call_tool("search", {"question": f"q{i}"}) for i in range(5)),
                                    return_exceptions=True)

    results = asyncio.run(five())                  # turns of 2, 2 and 1 episodes of 0.4 s: the last is past 1 s
    assert searcher.peak == 2
    assert [r.structured_content["queries"] for r in results[:4]] == [["q0"], ["q1"], ["q2"], ["q3"]]
    assert isinstance(results[4], ToolError) and "server busy" in str(results[4]) and "1 s" in str(results[4])
