"""Fair batching of concurrent requests into index calls.

Each request becomes a job. The scheduler runs one index call at a time (in a worker thread),
within budgets of what the call costs: queries, query characters (a query counts at least
``min_query_cost``: embedding even an empty one has a cost) and passages returned (queries times
``topk``: searching and encoding them is the cost of a large ``topk``). A large request is searched in
slices between which other requests get their turn:

- requests that fit in the budget whole go first, smallest first, and such a call takes no slice
  of a larger request: a one-query request waits for the call already running plus its own;
- when no waiting request fits whole, the smallest one gets a slice that fills the budget;
- a request passed over by one call goes first in the next, so a stream of small requests slows a
  large one down but never starves it;
- queries of different ``topk`` go to separate index calls, and a failed call is retried request
  by request, so that one request's failure (an upstream refusing its ``topk``) is its own;
- an unreachable upstream (:class:`~s3_agents.errors.RetrieverUnavailableError`, raised once the
  retriever's own retries are spent) is not retried: every request waiting when it is found gets
  the error at once, so none waits longer than one retry window, however long the queue.

Results are JSON-encoded in the worker thread, query by query, so a large reply never holds the
event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from s3_agents.config import ServerLimits
from s3_agents.errors import RetrieverError, RetrieverUnavailableError
from s3_agents.retrievers.base import Retriever
from s3_agents.types import Passage

__all__ = ["Job", "Scheduler"]

Encode = Callable[[list[Passage]], object]


@dataclass(eq=False)
class Job:
    """One request's queries and what has been searched of them.

    Attributes:
        queries: The request's queries.
        k: Passages per query.
        encode: Turns one query's hits into the JSON value of the reply.
        parts: JSON of each query searched so far, in order.
        taken: Queries handed to an index call so far.
        passed_over: Left out of the last index call while waiting.
        min_cost: What a query counts at least against a call's character budget.
    """

    queries: list[str]
    k: int
    encode: Encode
    future: asyncio.Future[list[bytes]]
    parts: list[bytes] = field(default_factory=list)
    taken: int = 0
    passed_over: bool = False
    min_cost: int = 1
    _chars: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._chars = [0, *itertools.accumulate(max(len(q), self.min_cost) for q in self.queries)]

    @property
    def dead(self) -> bool:
        """Answered already: finished, failed, or given up by its request (deadline)."""
        return self.future.done()

    def chars_left(self) -> int:
        return self._chars[-1] - self._chars[self.taken]

    def cost(self, i: int) -> int:
        """What query ``i`` counts against a call's character budget."""
        return self._chars[i + 1] - self._chars[i]


@dataclass(frozen=True)
class _Slice:
    job: Job
    lo: int
    hi: int

    @property
    def queries(self) -> list[str]:
        return self.job.queries[self.lo:self.hi]


class Scheduler:
    """Runs the jobs of concurrent requests as a sequence of budgeted index calls.

    Args:
        retriever: Searched from one worker thread at a time.
        limits: The budgets of one index call: ``max_batch`` queries, ``max_batch_chars`` query characters
            (each query counting at least ``min_query_cost``; a single longer query still goes alone) and
            ``max_batch_passages`` passages, queries times ``topk`` (a single query still goes).

    Example:
        >>> scheduler = Scheduler(retriever, ServerLimits(max_batch_chars=4000))     # doctest: +SKIP
        >>> scheduler.start()                      # inside the server's event loop  # doctest: +SKIP
        >>> parts = await scheduler.job(["river through Gritia"], 3, encode).future   # doctest: +SKIP
    """

    def __init__(self, retriever: Retriever, limits: ServerLimits) -> None:
        self.retriever = retriever
        self.limits = limits
        self.index_calls = 0
        self.queries_served = 0
        self._jobs: list[Job] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def job(self, queries: list[str], k: int, encode: Encode) -> Job:
        """A job for ``queries``, queued at once; await ``job.future`` for its encoded results."""
        job = Job(queries, k, encode, asyncio.get_running_loop().create_future(), min_cost=self.limits.min_query_cost)
        self._jobs.append(job)
        assert self._wake is not None, "Scheduler.start() was not called"
        self._wake.set()
        return job

    def plan(self) -> list[_Slice]:
        """The slices of the next index call (and advances each job past them)."""
        self._jobs = [job for job in self._jobs if not job.dead and job.taken < len(job.queries)]
        if not self._jobs:
            return []
        ends: dict[Job, int] = {}
        queries_left, chars_left, passages_left = (self.limits.max_batch, self.limits.max_batch_chars,
                                                   self.limits.max_batch_passages)

        def take(job: Job, whole: bool) -> None:
            """Add queries of ``job`` within the budgets (``whole``: all of them, or none)."""
            nonlocal queries_left, chars_left, passages_left
            start = end = ends.get(job, job.taken)
            n, chars, passages = queries_left, chars_left, passages_left
            while end < len(job.queries) and n > 0:
                cost = job.cost(end)
                # The call's first query goes in whatever its cost: a query over a budget runs alone.
                if (cost > chars or job.k > passages) and (ends or end != start):
                    break
                n, chars, passages, end = n - 1, chars - cost, passages - job.k, end + 1
            if end == start or (whole and end < len(job.queries)):
                return
            ends[job], queries_left, chars_left, passages_left = end, n, chars, passages

        passed_over = [job for job in self._jobs if job.passed_over]
        if passed_over:
            take(passed_over[0], whole=False)
        by_size = sorted(self._jobs, key=Job.chars_left)
        for job in by_size:
            if job not in ends:
                take(job, whole=True)
        if not ends:
            take(by_size[0], whole=False)
        for job in self._jobs:
            job.passed_over = job not in ends
        slices = [_Slice(job, job.taken, end) for job, end in ends.items()]
        for piece in slices:
            piece.job.taken = piece.hi
        return slices

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            slices = self.plan()
            if not slices:
                self._wake.clear()
                await self._wake.wait()
                continue
            outcomes = await asyncio.to_thread(self._search, slices)
            down: RetrieverUnavailableError | None = None
            for piece, outcome in zip(slices, outcomes):
                job = piece.job
                if isinstance(outcome, RetrieverUnavailableError):
                    down = outcome
                if job.dead:
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                    continue
                job.parts.extend(outcome)
                if len(job.parts) == len(job.queries):
                    job.future.set_result(job.parts)
            if down is not None:  # the upstream is gone: whoever waited for it hears so now
                for job in self._jobs:
                    if not job.dead:
                        job.future.set_exception(down)

    def _search(self, slices: list[_Slice]) -> list[list[bytes] | Exception]:
        """Search every slice (one index call per ``k``); a failed call is retried slice by slice, unless the
        upstream is unreachable: then every slice not yet searched fails with that error, without a call."""
        outcomes: dict[int, list[bytes] | Exception] = {}
        by_k: dict[int, list[int]] = {}
        for i, piece in enumerate(slices):
            by_k.setdefault(piece.job.k, []).append(i)
        down: RetrieverUnavailableError | None = None
        for k, members in by_k.items():
            if down is not None:
                outcomes.update(dict.fromkeys(members, down))
                continue
            try:
                hits = self._call([q for i in members for q in slices[i].queries], k)
            except RetrieverUnavailableError as err:
                down = err
                outcomes.update(dict.fromkeys(members, err))
                continue
            except Exception as err:
                if len(members) == 1:
                    outcomes[members[0]] = err
                    continue
                for i in members:  # isolate the request that caused it
                    if down is not None or slices[i].job.dead:  # nobody waits for it, or nothing would answer
                        outcomes[i] = down or err
                        continue
                    try:
                        outcomes[i] = self._encode(slices[i], self._call(slices[i].queries, k))
                    except RetrieverUnavailableError as gone:
                        down = outcomes[i] = gone
                    except Exception as own:
                        outcomes[i] = own
                continue
            offset = 0
            for i in members:
                n = slices[i].hi - slices[i].lo
                outcomes[i] = self._encode(slices[i], hits[offset:offset + n])
                offset += n
        return [outcomes[i] for i in range(len(slices))]

    def _call(self, queries: list[str], k: int) -> list[list[Passage]]:
        hits = self.retriever.search(queries, k)
        if len(hits) != len(queries):
            raise RetrieverError(f"{type(self.retriever).__name__} returned {len(hits)} result lists "
                                 f"for {len(queries)} queries")
        self.index_calls += 1
        self.queries_served += len(queries)
        return hits

    @staticmethod
    def _encode(piece: _Slice, hits: list[list[Passage]]) -> list[bytes]:
        return [json.dumps(piece.job.encode(found[:piece.job.k]), ensure_ascii=False).encode() for found in hits]
