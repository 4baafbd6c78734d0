"""The retriever protocol: batched search returning scored passages."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType

import numpy as np

from s3_agents.embedders import Embedder
from s3_agents.types import Passage

__all__ = ["Retriever", "DenseRetriever", "check_queries"]


def check_queries(queries: Sequence[str], k: int) -> list[str]:
    """Validate a batch of queries and ``k``; return the queries as a list.

    Raises:
        TypeError: If ``queries`` is a single string or holds non-strings.
        ValueError: If ``k`` is not a positive integer.
    """
    if isinstance(queries, (str, bytes)):
        raise TypeError("search() takes a list of queries; wrap a single one: search([query], k)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    queries = list(queries)
    for i, query in enumerate(queries):
        if not isinstance(query, str):
            raise TypeError(f"queries[{i}] is {type(query).__name__}, expected str")
    return queries


class Retriever(ABC):
    """Batched top-k search over a passage collection.

    Subclasses implement :meth:`_search`; :meth:`search` validates the input first, and
    :meth:`asearch` runs :meth:`search` in a worker thread unless a subclass has a native
    async path.

    Example:
        >>> from s3_agents.retrievers import FaissRetriever
        >>> from s3_agents.embedders import HashingEmbedder
        >>> from s3_agents.corpus import load_demo_corpus
        >>> r = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
        >>> hits = r.search(["Which river flows through Gritia?"], k=3)
        >>> len(hits), len(hits[0]), hits[0][0].score is not None
        (1, 3, True)
    """

    def search(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        """Top-``k`` passages for each query, best first, each with its score.

        Args:
            queries: The queries (a list, even for one query).
            k: Passages per query; fewer come back when the collection is smaller.

        Returns:
            One list of passages per query, in query order.
        """
        queries = check_queries(queries, k)
        if not queries:
            return []
        return self._search(queries, int(k))

    async def asearch(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        """Async :meth:`search` (runs in a worker thread by default)."""
        return await asyncio.to_thread(self.search, queries, k)

    @abstractmethod
    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """Search validated, non-empty ``queries``."""

    def close(self) -> None:
        """Release files, clients and connections (no-op by default)."""

    def __enter__(self) -> Retriever:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DenseRetriever(Retriever):
    """A retriever that embeds queries and searches vectors; see :meth:`search_vectors`."""

    embedder: Embedder

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        return self.search_vectors(self.embedder.embed_queries(queries), k)

    @abstractmethod
    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Passage]]:
        """Top-``k`` passages for each row of a ``(n, dim)`` float32 array of query vectors."""
