"""A hostile but fair client against real `s3 serve` processes on 127.0.0.1.

Malformed requests (raw bytes over a socket, so that nothing is tidied up by an HTTP client), bodies
that never finish, hostile Host headers, a proxy in front of a stricter upstream, and keyed servers
reached through every client path. Every call is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from s3_agents.retrievers import RemoteRetriever
from tests.conftest import ServerProcess, run_cli

pytestmark = pytest.mark.slow

KEY = "k3y-for-tests"


@pytest.fixture(scope="module")
def server():
    proc = ServerProcess("--embedder", "hashing", "--api-key", KEY, "--max-queries", "8", "--max-topk", "10",
                         "--max-body-bytes", "4000", "--max-query-chars", "100", "--max-request-chars", "300",
                         "--body-timeout", "1")
    yield proc
    proc.stop()


def raw(server: ServerProcess, data: bytes, *, wait: float = 10) -> tuple[int, bytes]:
    """Send bytes and read one reply (by its Content-Length, or until the peer closes): status (0: none), body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
                head, found, body = reply.partition(b"\r\n\r\n")
                length = [line.split(b":", 1)[1] for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:")]
                if found and length and len(body) >= int(length[0]):
                    break
        except TimeoutError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


def post(server: ServerProcess, body: bytes, headers: dict[str, str | None] | None = None) -> tuple[int, bytes]:
    fields: dict[str, str | None] = {"Host": f"127.0.0.1:{server.port}", "Authorization": f"Bearer {KEY}",
                                     "Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    head = "POST /retrieve HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return raw(server, (head + "\r\n").encode("latin-1") + body)


BODIES: dict[str, tuple[bytes, int, str]] = {
    "empty": (b"", 422, "Invalid JSON"),
    "null": (b"null", 422, "object"),
    "array": (b"[]", 422, "object"),
    "no queries": (b"{}", 422, "queries: Field required"),
    "queries null": (b'{"queries": null}', 422, "queries"),
    "queries a string": (b'{"queries": "q"}', 422, "queries"),
    "query an int": (b'{"queries": [1]}', 422, "queries.0"),
    "query null": (b'{"queries": [null]}', 422, "queries.0"),
    "query a list": (b'{"queries": [["n"]]}', 422, "queries.0"),
    "query an object": (b'{"queries": [{"a": 1}]}', 422, "queries.0"),
    "query a bool": (b'{"queries": [true]}', 422, "queries.0"),
    "topk a string": (b'{"queries": ["q"], "topk": "3"}', 422, "topk"),
    "topk a float": (b'{"queries": ["q"], "topk": 3.5}', 422, "topk"),
    "topk negative": (b'{"queries": ["q"], "topk": -1}', 422, "between 1 and 10"),
    "topk zero": (b'{"queries": ["q"], "topk": 0}', 422, "between 1 and 10"),
    "topk over the limit": (b'{"queries": ["q"], "topk": 11}', 422, "between 1 and 10"),
    "topk huge": (b'{"queries": ["q"], "topk": 1000000000000000000000000000000}', 422, "between 1 and 10"),
    "topk a bool": (b'{"queries": ["q"], "topk": true}', 422, "topk"),
    "topk NaN": (b'{"queries": ["q"], "topk": NaN}', 422, "topk"),
    "topk 1e400": (b'{"queries": ["q"], "topk": 1e400}', 422, "topk"),
    "return_scores a string": (b'{"queries": ["q"], "return_scores": "yes"}', 422, "return_scores"),
    "return_scores an int": (b'{"queries": ["q"], "return_scores": 1}', 422, "return_scores"),
    "too many queries": (json.dumps({"queries": ["q"] * 9}).encode(), 413, "limit is 8"),
    "query too long": (json.dumps({"queries": ["q" * 101]}).encode(), 422, "limit is 100"),
    "too many characters": (json.dumps({"queries": ["q" * 90] * 4}).encode(), 413, "360 query characters"),
    "body too large": (json.dumps({"queries": ["x" * 4500]}).encode(), 413, "4000 bytes"),
    "not JSON": (b"{not json", 422, "Invalid JSON"),
    "truncated JSON": (b'{"queries": ["q"', 422, "Invalid JSON"),
    "trailing garbage": (b'{"queries": ["q"]} x', 422, "trailing characters"),
    "invalid UTF-8": (b'{"queries": ["\xff\xfe"]}', 422, "Invalid JSON"),
    "UTF-16": ('{"queries": ["q"]}'.encode("utf-16"), 422, "Invalid JSON"),
    "nested 1,900 deep": (b"[" * 1900 + b"]" * 1900, 422, "recursion limit"),
    "lone surrogate": (b'{"queries": ["\\ud800"]}', 422, "Invalid JSON"),
    "duplicate key": (b'{"queries": ["a"], "queries": 5}', 422, "queries"),
}

RAW: dict[str, tuple[bytes, int]] = {
    "Content-Length not a number": (b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", 400),
    "Content-Length negative": (b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400),
    "two Host headers": (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", 400),
    "TLS hello on plain HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 50, 400),
    "HTTP/0.9 line": (b"GET /health\r\n\r\n", 400),
    # With a key set, every path but /health and the docs pages needs it before routing (as in s3 mcp): no method
    # or path is told apart without it.
    "GET /retrieve": (b"GET /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),
    "PUT /retrieve": (b"PUT /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 401),
    "OPTIONS /retrieve": (b"OPTIONS /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),
    "DELETE /health": (b"DELETE /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    "POST /health": (b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 405),
    "made-up method": (b"BR3W /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    "unknown path": (b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),
    "/docs (off)": (b"GET /docs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    "/redoc (off)": (b"GET /redoc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    "/openapi.json (off)": (b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    "path traversal": (b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),
    "8 KB path": (b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),
    "foreign Host (DNS rebinding)": (b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400),
    "foreign Host with port": (b"GET /health HTTP/1.1\r\nHost: evil.example:3000\r\n\r\n", 400),
    "loopback-looking Host": (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1.evil.example\r\n\r\n", 400),
    "no Host (HTTP/1.0)": (b"GET /health HTTP/1.0\r\n\r\n", 400),
    "control bytes in Host": (b"GET /health HTTP/1.1\r\nHost: \x01\x02\r\n\r\n", 400),
    "a second name after the port": (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:3000, evil.com\r\n\r\n", 400),
    "port not a number": (b"GET /health HTTP/1.1\r\nHost: localhost:abc\r\n\r\n", 400),
    "empty port": (b"GET /health HTTP/1.1\r\nHost: localhost:\r\n\r\n", 400),
    "IPv6 with junk after the bracket": (b"GET /health HTTP/1.1\r\nHost: [::1]evil\r\n\r\n", 400),
}

AUTH: dict[str, dict[str, str | None]] = {
    "no key": {"Authorization": None},
    "wrong key": {"Authorization": "Bearer nope"},
    "empty bearer": {"Authorization": "Bearer "},
    "basic auth": {"Authorization": "Basic azN5Og=="},
    "wrong X-API-Key": {"Authorization": None, "X-API-Key": "nope"},
    "key in other case": {"Authorization": f"Bearer {KEY.upper()}"},
    "latin-1 key": {"Authorization": "Bearer cl\xe9"},
    "key as a prefix": {"Authorization": f"Bearer {KEY[:-1]}"},
}


def test_the_malformed_corpus_is_large_enough() -> None:
    assert len(BODIES) + len(RAW) + len(AUTH) >= 56


@pytest.mark.parametrize("name", list(BODIES))
def test_malformed_body_gets_a_clear_4xx(server, name: str) -> None:
    body, status, words = BODIES[name]
    got, reply = post(server, body)
    assert got == status, reply[:300]
    detail = json.loads(reply)["detail"]
    assert isinstance(detail, str) and words in detail


@pytest.mark.parametrize("name", list(RAW))
def test_malformed_request_gets_a_4xx(server, name: str) -> None:
    data, status = RAW[name]
    got, reply = raw(server, data)
    assert got == status, reply[:300]


@pytest.mark.parametrize("name", list(AUTH))
def test_bad_credentials_get_401(server, name: str) -> None:
    got, reply = post(server, b'{"queries": ["q"]}', AUTH[name])
    assert got == 401 and b"API key" in reply


def test_the_server_is_whole_after_the_corpus(server) -> None:
    got, reply = post(server, b'{"queries": ["Which river flows through Gritia?"], "topk": 2}')
    assert got == 200 and len(json.loads(reply)["result"][0]) == 2
    assert "Traceback" not in server.output()


def test_a_body_that_never_ends_gets_408_and_one_log_line(server) -> None:
    start = time.monotonic()
    got, reply = raw(server, f"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                             "Content-Length: 100\r\n\r\n{\"queries\"".encode())
    assert got == 408 and b"not received within 1 s" in reply
    assert time.monotonic() - start < 8
    # A client that hangs up mid-body is dropped with one line too, no traceback.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                     "Content-Length: 100\r\n\r\n{\"quer".encode())
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while "hung up" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.output()
    assert log.count("did not finish its request body within 1 s (10 bytes received)") == 1
    assert log.count("hung up before finishing its request body (6 bytes received)") == 1
    assert "Traceback" not in log and "ClientDisconnect" not in log


def test_allowed_host_option(start_server) -> None:
    proc = start_server("--embedder", "hashing", "--allowed-host", "my-box")
    ok, _ = raw(proc, b"GET /health HTTP/1.1\r\nHost: my-box:8080\r\n\r\n")
    still_local, _ = raw(proc, f"GET /health HTTP/1.1\r\nHost: localhost:{proc.port}\r\n\r\n".encode())
    foreign, _ = raw(proc, b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert (ok, still_local, foreign) == (200, 200, 400)


def test_a_proxy_passes_each_request_on_its_own(start_server, monkeypatch) -> None:
    """Upstream allows topk <= 5; one client asking topk 50 through the proxy fails alone, with the upstream's 422."""
    upstream = start_server("--embedder", "hashing", "--max-topk", "5", "--api-key", KEY)
    monkeypatch.setenv("S3_RETRIEVER_KEY", KEY)  # the proxy's key for its upstream (environment path)
    # A token in the upstream's query string must not reach /health (open to anyone) or the log.
    proxy = start_server("--index", upstream.url + "/retrieve?token=t0ken", "--max-topk", "100")
    monkeypatch.delenv("S3_RETRIEVER_KEY")
    assert httpx.get(proxy.url + "/health").json()["index"] == upstream.url     # scheme, host and port

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            bodies = [{"queries": [f"river number {i}"], "topk": 50 if i % 7 == 0 else 3} for i in range(84)]
            return await asyncio.gather(*(client.post("/retrieve", json=b) for b in bodies))

    replies = asyncio.run(main())
    wide = [r for i, r in enumerate(replies) if i % 7 == 0]
    narrow = [r for i, r in enumerate(replies) if i % 7]
    assert [r.status_code for r in narrow] == [200] * len(narrow)
    assert all(len(r.json()["result"][0]) == 3 for r in narrow)
    assert {r.status_code for r in wide} == {422}
    assert all("upstream retrieval server refused the request (HTTP 422)" in r.json()["detail"]
               and "between 1 and 5" in r.json()["detail"] for r in wide)
    assert "t0ken" not in proxy.output()


def test_keyed_server_through_every_client_path(start_server, monkeypatch, tmp_path) -> None:
    keyed = start_server("--embedder", "hashing", "--api-key", KEY)
    question = "Which river flows through Gritia?"
    # The Python client: explicit key, or the environment variable.
    assert RemoteRetriever(keyed.url, api_key=KEY).search([question], 1)[0]
    monkeypatch.setenv("S3_RETRIEVER_KEY", KEY)
    assert RemoteRetriever(keyed.url).search([question], 1)[0]
    monkeypatch.delenv("S3_RETRIEVER_KEY")
    # The CLI: s3 retrieve, s3 eval --url and --bm25-index URL (without an LLM call: no-retrieval skips none).
    refused = run_cli("retrieve", question, "--url", keyed.url, timeout=120)
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
    found = run_cli("retrieve", question, "--url", keyed.url, "--retriever-key", KEY, "--json", timeout=120)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["result"][0]
    env_found = run_cli("retrieve", question, "--url", keyed.url, "--json", timeout=120,
                        env={"S3_RETRIEVER_KEY": KEY})
    assert env_found.returncode == 0, env_found.stderr


def test_s3_eval_reaches_a_keyed_server_for_dense_and_bm25(start_server, llama_server, tmp_path) -> None:
    keyed = start_server("--embedder", "hashing", "--api-key", KEY)
    args = ("eval", "--methods", "naive-rag,naive-rag-bm25", "--url", keyed.url, "--bm25-index", keyed.url,
            "--generator-url", llama_server.url, "--generator-model", llama_server.model, "--no-judge",
            "--limit", "1", "--out", str(tmp_path / "eval"))
    refused = run_cli(*args, timeout=300)
    assert refused.returncode != 0 and "HTTP 401" in refused.stdout + refused.stderr
    done = run_cli(*args, "--retriever-key", KEY, "--out", str(tmp_path / "eval2"), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "eval2" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["naive-rag", "naive-rag-bm25"]
