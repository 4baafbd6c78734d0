"""The searcher as one object: graph + dependencies, single and batched episodes."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from s3_agents._tasks import gather_bounded, run_sync
from s3_agents.config import SearchConfig
from s3_agents.errors import BatchError
from s3_agents.graph import SearchContext, SearchState, build_search_graph
from s3_agents.llm.base import AsyncChatClient
from s3_agents.retrievers.base import Retriever

__all__ = ["S3Searcher"]


@functools.cache
def _shared_graph() -> Any:
    """One compiled graph for every searcher: dependencies travel as run-time context."""
    return build_search_graph()


class S3Searcher:
    """Run s3 episodes: one question, or many at once with bounded concurrency.

    Args:
        policy: The searcher LLM: any :class:`~s3_agents.llm.ChatClient`; for ``asearch`` / ``abatch`` /
            ``astream`` only, any :class:`~s3_agents.llm.AsyncChatClient`.
        retriever: Where its queries go.
        config: Loop settings (8-3-3 by default).
        graph: A compiled search graph (default: :func:`~s3_agents.graph.build_search_graph`).

    Example:
        >>> from s3_agents.testing import ScriptedClient
        >>> from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus
        >>> retriever = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
        >>> searcher = S3Searcher(ScriptedClient(["<search_complete>True</search_complete>"]), retriever)
        >>> state = searcher.search("What is the currency of Ketroul?")
        >>> state["stop_reason"], len(state["context"])     # stopped at once: the 3 naive-RAG documents
        ('complete', 3)
    """

    def __init__(self, policy: AsyncChatClient, retriever: Retriever, config: SearchConfig | None = None, *,
                 graph: Any = None) -> None:
        self.context = SearchContext(policy=policy, retriever=retriever, config=config or SearchConfig())
        self.graph = graph or _shared_graph()
        reference_client = callable(getattr(policy, "prompt_ids", None))
        if (self.context.config.prompt_format == "reference") != reference_client:
            raise ValueError("the reference format is a pair: SearchConfig(prompt_format='reference') with the policy "
                             "wrapped in ReferenceFormatClient(client, tokenizer), or neither")

    def search(self, question: str) -> SearchState:
        """Run one episode; returns the final state (context, queries, outputs, transcript...)."""
        return self.graph.invoke({"question": question}, context=self.context)

    async def asearch(self, question: str) -> SearchState:
        """Async :meth:`search` (LLM and retriever calls are awaited, not threaded)."""
        return await self.graph.ainvoke({"question": question}, context=self.context)

    async def abatch(self, questions: Sequence[str], *, concurrency: int = 8,
                     return_exceptions: bool = False) -> list[Any]:
        """Run many episodes concurrently, at most ``concurrency`` at a time; results in input order.

        One failing episode (an endpoint that stays down, a retriever error) does not stop the others: every
        episode runs to its end, then the failures are reported. Cancelling the call (Ctrl-C) cancels every
        episode still running.

        Args:
            questions: One episode each.
            concurrency: Episodes in flight at once.
            return_exceptions: Put a failed episode's exception in its slot instead of raising.

        Returns:
            The final states (with ``return_exceptions``, an :class:`Exception` where an episode failed).

        Raises:
            BatchError: If an episode failed (without ``return_exceptions``); its ``results`` hold the states
                of the others (``None`` where one failed) and ``errors`` the exceptions by index.
        """
        results = await gather_bounded((self.asearch(q) for q in questions), concurrency=concurrency,
                                       return_exceptions=True)
        errors = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
        if errors and not return_exceptions:
            raise BatchError([None if i in errors else r for i, r in enumerate(results)], errors) \
                from errors[min(errors)]
        return results

    def batch(self, questions: Sequence[str], *, concurrency: int = 8,
              return_exceptions: bool = False) -> list[Any]:
        """Blocking :meth:`abatch`; works inside a running event loop too (a notebook cell)."""
        return run_sync(self.abatch(questions, concurrency=concurrency, return_exceptions=return_exceptions))

    def stream(self, question: str, *, stream_mode: str | Sequence[str] = "updates") -> Iterator[Any]:
        """Yield the graph's steps as they happen (``"updates"``: what each node added; ``"values"``: the whole
        state after each step; a list of modes yields ``(mode, chunk)`` pairs)."""
        yield from self.graph.stream({"question": question}, context=self.context, stream_mode=stream_mode)

    async def astream(self, question: str, *, stream_mode: str | Sequence[str] = "updates") -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        async for step in self.graph.astream({"question": question}, context=self.context, stream_mode=stream_mode):
            yield step
