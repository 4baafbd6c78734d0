"""How the server shares its index: large requests in slices, one request's failure its own, deadlines.

In-process (the app under httpx's ASGI transport) with a recording retriever, so the order of index
calls is checked, not timed. The same properties against `s3 serve` processes are in
test_server_faults.py.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from s3_agents.errors import RetrieverRefusedError
from s3_agents.processes import free_port
from s3_agents.retrievers import RemoteRetriever
from s3_agents.retrievers.base import Retriever
from s3_agents.server import ServerLimits, create_app
from s3_agents.server.scheduler import Scheduler
from s3_agents.types import Passage


class Recording(Retriever):
    """Answers every query with ``k`` passages named after it; logs each index call; can fail or stall."""

    def __init__(self, *, delay: float = 0.0, max_k: int = 100, poison: str = "") -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.delay = delay
        self.max_k = max_k
        self.poison = poison
        self.release = threading.Event()
        self.release.set()

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        self.release.wait(10)
        self.calls.append((list(queries), k))
        time.sleep(self.delay)
        if k > self.max_k:
            raise RetrieverRefusedError("http://upstream/retrieve", 422, f"topk must be between 1 and {self.max_k}")
        if self.poison and self.poison in queries:
            raise RuntimeError(f"cannot search {self.poison!r}")
        return [[Passage(f"{q}#{i}", q, "text") for i in range(k)] for q in queries]


async def _post(app, *bodies: dict, stagger: float = 0.0) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        async def one(i: int, body: dict) -> httpx.Response:
            await asyncio.sleep(i * stagger)
            return await client.post("/retrieve", json=body)

        async with app.router.lifespan_context(app):
            return await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))


def test_a_small_request_is_served_between_slices_of_a_large_one() -> None:
    retriever = Recording(delay=0.02)
    app = create_app(retriever, limits=ServerLimits(max_batch_chars=100))
    big = {"queries": [f"big-{i:03d}-" + "x" * 40 for i in range(40)], "topk": 2}  # 50 chars each: 2 per call
    small = {"queries": ["small"], "topk": 2}
    replies = asyncio.run(_post(app, big, small, stagger=0.05))
    assert [r.status_code for r in replies] == [200, 200]
    assert [hits[0]["id"] for hits in replies[0].json()["result"]] == [q + "#0" for q in big["queries"]]
    calls = [queries for queries, _ in retriever.calls]
    turn = next(i for i, queries in enumerate(calls) if "small" in queries)
    # The small request went into the first index call planned after it arrived (the running one
    # could not be interrupted), long before the large one was done.
    assert turn <= 4 < len(calls) - 5
    assert all(sum(len(q) for q in queries) <= 100 for queries in calls)


def test_plan_runs_whole_small_requests_first_and_never_starves_a_large_one() -> None:
    async def main() -> list[list[tuple[str, int, int]]]:
        scheduler = Scheduler(Recording(), ServerLimits(max_batch=4, max_batch_chars=1000))
        scheduler._wake = asyncio.Event()  # planned by hand: no background task
        scheduler.job([f"b{i}" for i in range(10)], 3, list)
        for i in range(5):
            scheduler.job([f"s{i}"], 3, list)
        return [[(p.job.queries[0], p.lo, p.hi) for p in scheduler.plan()] for _ in range(6)]

    plans = asyncio.run(main())
    assert plans == [
        [("s0", 0, 1), ("s1", 0, 1), ("s2", 0, 1), ("s3", 0, 1)],  # whole small requests, no slice of the big one
        [("b0", 0, 4)],                                            # passed over once: it goes first
        [("s4", 0, 1)],                                            # then the small one it left out
        [("b0", 4, 8)],
        [("b0", 8, 10)],                                           # what is left fits whole
        [],
    ]


def test_each_request_succeeds_or_fails_on_its_own() -> None:
    retriever = Recording(max_k=5, poison="boom")
    app = create_app(retriever)
    retriever.release.clear()  # hold the first call so that the others queue up and share calls

    async def main():
        task = asyncio.ensure_future(_post(app, *(
            [{"queries": [f"q{i}"], "topk": 3} for i in range(12)]
            + [{"queries": ["w"], "topk": 50}, {"queries": ["boom", "q"], "topk": 3}])))
        await asyncio.sleep(0.3)
        retriever.release.set()
        return await task

    replies = asyncio.run(main())
    good, upstream_refused, poisoned = replies[:12], replies[12], replies[13]
    assert [r.status_code for r in good] == [200] * 12
    assert upstream_refused.status_code == 422
    assert "upstream retrieval server refused the request (HTTP 422)" in upstream_refused.json()["detail"]
    assert "between 1 and 5" in upstream_refused.json()["detail"]
    assert poisoned.status_code == 500 and "cannot search 'boom'" in poisoned.json()["detail"]
    # Requests of different topk never shared an index call, and no call asked for more than its own topk.
    assert all(k in (3, 50) for _, k in retriever.calls)


def test_a_call_is_bounded_by_the_passages_it_returns_and_a_floor_per_query() -> None:
    """Server finding 1: 512 empty queries with topk 100 went into calls of 256 queries (25,600 passages out);
    now a call returns at most ``max_batch_passages`` passages, and a query counts at least ``min_query_cost``
    characters however short."""
    async def first_calls(queries: list[str], k: int) -> list[int]:
        scheduler = Scheduler(Recording(), ServerLimits(max_batch=256, max_batch_chars=2000, max_batch_passages=250,
                                                        min_query_cost=50))
        scheduler._wake = asyncio.Event()  # planned by hand: no background task
        scheduler.job(queries, k, list)
        return [sum(p.hi - p.lo for p in scheduler.plan()) for _ in range(3)]

    assert asyncio.run(first_calls([""] * 512, 100)) == [2, 2, 2]             # 250 passages: 2 queries of 100
    assert asyncio.run(first_calls(["short"] * 512, 3)) == [40, 40, 40]       # 2,000 characters at 50 a query
    assert asyncio.run(first_calls(["x" * 400] * 20, 3)) == [5, 5, 5]         # long queries count as they are


def test_an_unreachable_upstream_answers_every_waiting_request_after_one_retry_window() -> None:
    """A proxy whose upstream died: one index call spends the retries, then every request that waited (any topk)
    gets 503 at once; none is retried on its own. A request that comes later makes one fresh attempt."""
    upstream = RemoteRetriever(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.05, timeout=2)
    calls: list[int] = []
    first = threading.Event()

    class Proxy(Retriever):
        def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
            first.wait(10)              # the first call waits until every request has queued behind it
            calls.append(k)
            return upstream.search(queries, k)

    app = create_app(Proxy())

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        task = asyncio.ensure_future(_post(app, *({"queries": [f"q{i}", f"r{i}"], "topk": 1 + i % 4}
                                                  for i in range(16))))
        await asyncio.sleep(0.3)
        first.set()
        return await task, await _post(app, {"queries": ["later"], "topk": 2})

    waited, later = asyncio.run(main())
    assert [r.status_code for r in waited + later] == [503] * 17
    assert all(r.headers["Retry-After"] == "5" and "did not answer" in r.json()["detail"] for r in waited + later)
    assert len(calls) == 2


def test_deadline_answers_504_for_a_request_too_large_and_503_for_one_never_served() -> None:
    retriever = Recording(delay=0.15)
    app = create_app(retriever, limits=ServerLimits(max_batch=1, request_timeout=0.5))
    big = {"queries": [f"q{i}" for i in range(20)]}
    late = {"queries": [f"z{i}" for i in range(20)]}
    first, second = asyncio.run(_post(app, big, late, stagger=0.01))
    assert first.status_code == 504 and "not served within 0.5 s" in first.json()["detail"]
    assert second.status_code in (503, 504)
    # Once given up, a request's queries are not searched any more.
    searched = len(retriever.calls)
    assert searched < 12


def test_a_one_query_request_past_its_deadline_is_told_the_server_was_busy() -> None:
    app = create_app(Recording(delay=1.0), limits=ServerLimits(request_timeout=0.3))
    (reply,) = asyncio.run(_post(app, {"queries": ["slow"]}))
    detail = reply.json()["detail"]
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
    assert "server busy" in detail and "1 query within 0.3 s" in detail and "fewer" not in detail


def test_a_request_over_the_character_cap_is_refused_before_any_search() -> None:
    retriever = Recording()
    app = create_app(retriever, limits=ServerLimits(max_request_chars=1000))
    (reply,) = asyncio.run(_post(app, {"queries": ["x" * 600, "y" * 600]}))
    assert reply.status_code == 413 and "1200 query characters" in reply.json()["detail"]
    assert retriever.calls == []


@pytest.mark.parametrize(("host", "allowed", "status"), [
    ("127.0.0.1:3000", None, 200),
    ("localhost", None, 200),
    ("[::1]:3000", None, 200),
    ("evil.example:3000", None, 400),
    ("127.0.0.1.evil.example", None, 400),
    ("127.0.0.1:3000, evil.example", None, 400),
    ("localhost:abc", None, 400),
    ("localhost:", None, 400),
    ("", None, 400),
    ("my-box:3000", ["my-box"], 200),
    ("evil.example", ["*"], 200),
])
def test_host_allow_list(host: str, allowed: list[str] | None, status: int) -> None:
    kwargs = {} if allowed is None else {"allowed_hosts": allowed}
    app = create_app(Recording(), **kwargs)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/health", headers={"Host": host})

    reply = asyncio.run(main())
    assert reply.status_code == status
    if status == 400:
        assert "not served here" in reply.json()["detail"] and "--allowed-host" in reply.json()["detail"]


def test_s3_serve_defaults_are_the_server_limits() -> None:
    import dataclasses
    import inspect

    from s3_agents.cli.serve import serve

    params = inspect.signature(serve).parameters
    for limit in dataclasses.fields(ServerLimits):
        assert params[limit.name].default == limit.default, limit.name
