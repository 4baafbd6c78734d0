"""Run coroutines together; on the first failure (or Ctrl-C) cancel the rest before re-raising."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

__all__ = ["gather_or_cancel"]


async def gather_or_cancel(coros: Iterable[Awaitable[Any]]) -> list[Any]:
    """``asyncio.gather`` that leaves no task running behind an exception."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
