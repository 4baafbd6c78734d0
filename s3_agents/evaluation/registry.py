"""The named evaluation methods: what ``s3 eval --methods`` accepts, and how each is built."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from s3_agents.config import SearchConfig
from s3_agents.evaluation.methods import IRCoT, Method, NaiveRAG, NoRetrieval, QueryRewrite, S3Method, SearchR1Style
from s3_agents.generator import Generator
from s3_agents.llm.base import ChatClient
from s3_agents.retrievers.base import Retriever

__all__ = ["METHOD_NAMES", "build_methods"]

METHOD_NAMES = ("no-retrieval", "naive-rag", "naive-rag-bm25", "query-rewrite", "query-rewrite-bm25", "ircot",
                "search-r1", "search-r1-self", "s3")
"""Names ``s3 eval --methods`` accepts, in the order reports list them (the paper's: baselines, then s3).
``naive-rag`` and ``query-rewrite`` search the main index (dense or BM25); their ``-bm25`` twins search a
BM25 index, so one run holds the paper's RAG-E5 and RAG-BM25 rows."""


def build_methods(names: Sequence[str], *, policy: ChatClient | None, retriever: Retriever, generator: Generator | None,
                  config: SearchConfig | None, k: int = 3, max_turns: int = 4,
                  bm25: Callable[[], Retriever] | None = None, s3_policy: ChatClient | None = None) -> list[Method]:
    """The named methods, each once, in the order given.

    Args:
        names: Names from :data:`METHOD_NAMES`.
        policy: The searcher / reasoner / rewriter wherever a method needs one.
        retriever: The main index.
        generator: Answers every method.
        config: The s3 searcher's configuration (method ``s3``).
        k: Documents per search of the baselines (the paper: 3).
        max_turns: Searches of IRCoT and Search-R1.
        bm25: Opens the BM25 retriever of the ``-bm25`` methods; called only when one is asked for.
        s3_policy: The s3 searcher's client when it is not ``policy`` as it is, e.g. ``policy`` in a
            :class:`~s3_agents.llm.ReferenceFormatClient` (the other methods keep plain chat).

    Raises:
        ValueError: For an unknown name, or a ``-bm25`` method without ``bm25``.

    Example:
        >>> from s3_agents import BM25Retriever, load_demo_corpus
        >>> sparse = BM25Retriever.from_passages(load_demo_corpus().passages)
        >>> [m.name for m in build_methods(["naive-rag", "naive-rag-bm25"], policy=None, retriever=sparse,
        ...                                generator=None, config=None, bm25=lambda: sparse)]
        ['naive-rag', 'naive-rag-bm25']
    """
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHOD_NAMES)}")
    names = list(dict.fromkeys(names))
    sparse = None
    if any(n.endswith("-bm25") for n in names):
        if bm25 is None:
            raise ValueError("the -bm25 methods need a BM25 retriever (bm25=...)")
        sparse = bm25()
    make: dict[str, Callable[[], Method]] = {
        "no-retrieval": lambda: NoRetrieval(generator),
        "naive-rag": lambda: NaiveRAG(retriever, generator, k=k),
        "naive-rag-bm25": lambda: NaiveRAG(sparse, generator, k=k, name="naive-rag-bm25"),
        "s3": lambda: S3Method(s3_policy or policy, retriever, generator, config),
        "query-rewrite": lambda: QueryRewrite(policy, retriever, generator, k=k),
        "query-rewrite-bm25": lambda: QueryRewrite(policy, sparse, generator, k=k, name="query-rewrite-bm25",
                                                   bm25=True),
        "ircot": lambda: IRCoT(policy, retriever, generator, k=k, max_steps=max_turns),
        "search-r1": lambda: SearchR1Style(policy, retriever, generator, k=k, max_turns=max_turns),
        "search-r1-self": lambda: SearchR1Style(policy, retriever, generator, k=k, max_turns=max_turns,
                                                self_answer=True),
    }
    return [make[n]() for n in names]
