"""The one home of concurrency: bounded task groups, and running a coroutine from sync code anywhere.

Every place that runs many episodes, answers or baselines at once (``S3Searcher.abatch``, ``s3 eval``,
``RagCache.aprecompute``) goes through :func:`gather_bounded`; every blocking wrapper of an async API
(``batch``, ``precompute``, ``score_episode``, ``LocalRun.train``) goes through :func:`run_sync`, which also
works where an event loop already runs (Jupyter) without ``nest_asyncio``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

__all__ = ["gather_bounded", "run_sync"]

T = TypeVar("T")


async def gather_bounded(awaitables: Iterable[Awaitable[T]], *, concurrency: int | None = None,
                         return_exceptions: bool = False) -> list[Any]:
    """Await ``awaitables`` together, at most ``concurrency`` at a time; results in input order.

    The tasks live in an :class:`asyncio.TaskGroup`, so none outlives the call: on the first failure (without
    ``return_exceptions``) or when the caller is cancelled (Ctrl-C), the others are cancelled and awaited
    before the failure propagates, as itself rather than wrapped in an exception group.

    Args:
        awaitables: Coroutines (or other awaitables) to run.
        concurrency: How many run at once (``None``: all).
        return_exceptions: Put an :class:`Exception` raised by one awaitable in its slot and let the others
            finish (cancellation and ``KeyboardInterrupt`` still stop everything).

    Raises:
        ValueError: If ``concurrency`` is below 1.

    Example:
        >>> async def double(x):
        ...     return 2 * x
        >>> asyncio.run(gather_bounded((double(i) for i in range(5)), concurrency=2))
        [0, 2, 4, 6, 8]
    """
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    gate = asyncio.Semaphore(concurrency) if concurrency else None

    async def one(awaitable: Awaitable[T]) -> Any:
        try:
            if gate is None:
                return await awaitable
            async with gate:
                return await awaitable
        except Exception as err:
            if return_exceptions:
                return err
            raise

    pending = list(awaitables)
    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(a)) for a in pending]
    except BaseExceptionGroup as grouped:        # the first failure, as itself (its peers were cancelled)
        failure = grouped.exceptions[0]
    if failure is not None:
        raise failure
    return [task.result() for task in tasks]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result.

    With no event loop running in this thread this is :func:`asyncio.run`. Inside a running loop (a Jupyter
    cell) the coroutine runs on a fresh loop in a worker thread while this thread waits, so the blocking
    APIs work in notebooks as they do in scripts (``await`` the async twin to keep the notebook's loop free).

    Example:
        >>> async def answer():
        ...     return 42
        >>> run_sync(answer())
        42
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="s3-run-sync") as pool:
        return pool.submit(context.run, asyncio.run, coro).result()
