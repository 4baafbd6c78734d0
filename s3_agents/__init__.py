"""s3-agents: train and serve s3 search agents for retrieval-augmented generation.

The core package holds the parts every later layer stands on: corpora, embedders,
retrievers (FAISS, Qdrant, BM25, remote) and an s3-compatible retrieval server.

Example:
    >>> from s3_agents import load_demo_corpus, FaissRetriever, load_embedder
    >>> retriever = FaissRetriever.from_passages(load_demo_corpus().passages,
    ...                                          load_embedder("hashing"))
    >>> [p.title for p in retriever.search(["currency of Ketroul"], k=1)[0]]
    ['Ketroul']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s3_agents.config import SearchConfig
    from s3_agents.corpus import Corpus, load_corpus, load_demo_corpus
    from s3_agents.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder, load_embedder
    from s3_agents.errors import (
        ContextWindowError,
        CorpusFormatError,
        IndexNotFoundError,
        LLMClientError,
        LLMUnavailableError,
        RetrieverError,
        RetrieverUnavailableError,
        S3Error,
    )
    from s3_agents.generator import Generator
    from s3_agents.graph import SearchContext, SearchState, build_search_graph
    from s3_agents.llm import ChatClient, LlamaCppClient, OpenAICompatClient, TransformersClient
    from s3_agents.metrics import exact_match, f1_score, gen_acc, span_match
    from s3_agents.qa import QAExample, load_demo_qa, load_qa
    from s3_agents.rag_cache import RagCache
    from s3_agents.rag_graph import RagState, build_rag_graph, s3_search_node
    from s3_agents.retrievers import (
        BM25Retriever,
        FaissRetriever,
        QdrantRetriever,
        RemoteRetriever,
        Retriever,
        build_index,
        load_retriever,
    )
    from s3_agents.reward import gain_beyond_rag
    from s3_agents.searcher import S3Searcher
    from s3_agents.types import Passage

# Every public name is imported when it is first used (PEP 562), so a process that needs only the retrievers
# does not pay for LangGraph, the OpenAI client and the rest (about 70 MB and a second of start-up).
_HOMES = {
    "SearchConfig": "config",
    **dict.fromkeys(["Corpus", "load_corpus", "load_demo_corpus"], "corpus"),
    **dict.fromkeys(["Embedder", "HashingEmbedder", "SentenceTransformerEmbedder", "load_embedder"], "embedders"),
    **dict.fromkeys(["ContextWindowError", "CorpusFormatError", "IndexNotFoundError", "LLMClientError",
                     "LLMUnavailableError", "RetrieverError", "RetrieverUnavailableError", "S3Error"], "errors"),
    "Generator": "generator",
    **dict.fromkeys(["SearchContext", "SearchState", "build_search_graph"], "graph"),
    **dict.fromkeys(["ChatClient", "LlamaCppClient", "OpenAICompatClient", "TransformersClient"], "llm"),
    **dict.fromkeys(["exact_match", "f1_score", "gen_acc", "span_match"], "metrics"),
    **dict.fromkeys(["QAExample", "load_demo_qa", "load_qa"], "qa"),
    "RagCache": "rag_cache",
    **dict.fromkeys(["RagState", "build_rag_graph", "s3_search_node"], "rag_graph"),
    **dict.fromkeys(["BM25Retriever", "FaissRetriever", "QdrantRetriever", "RemoteRetriever", "Retriever",
                     "build_index", "load_retriever"], "retrievers"),
    "gain_beyond_rag": "reward",
    "S3Searcher": "searcher",
    "Passage": "types",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 's3_agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"s3_agents.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__version__ = "0.1.0"

__all__ = [
    # data
    "Passage",
    "Corpus",
    "load_corpus",
    "load_demo_corpus",
    "load_demo_qa",
    "load_qa",
    "QAExample",
    # embedders
    "Embedder",
    "SentenceTransformerEmbedder",
    "HashingEmbedder",
    "load_embedder",
    # retrievers
    "Retriever",
    "FaissRetriever",
    "QdrantRetriever",
    "BM25Retriever",
    "RemoteRetriever",
    "build_index",
    "load_retriever",
    # searcher
    "SearchConfig",
    "S3Searcher",
    "build_search_graph",
    "SearchContext",
    "SearchState",
    # the searcher inside a user's LangGraph graph
    "s3_search_node",
    "build_rag_graph",
    "RagState",
    # LLMs, generator, reward
    "ChatClient",
    "OpenAICompatClient",
    "LlamaCppClient",
    "TransformersClient",
    "Generator",
    "exact_match",
    "f1_score",
    "span_match",
    "gen_acc",
    "gain_beyond_rag",
    "RagCache",
    # errors
    "S3Error",
    "CorpusFormatError",
    "IndexNotFoundError",
    "RetrieverError",
    "RetrieverUnavailableError",
    "LLMClientError",
    "LLMUnavailableError",
    "ContextWindowError",
]
