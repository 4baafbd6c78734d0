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

from s3_agents.corpus import Corpus, load_corpus, load_demo_corpus, load_demo_questions
from s3_agents.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder, load_embedder
from s3_agents.errors import (
    CorpusFormatError,
    IndexNotFoundError,
    RetrieverError,
    RetrieverUnavailableError,
    S3Error,
)
from s3_agents.retrievers import (
    BM25Retriever,
    FaissRetriever,
    QdrantRetriever,
    RemoteRetriever,
    Retriever,
    build_index,
    load_retriever,
)
from s3_agents.types import Passage

__version__ = "0.1.0"

__all__ = [
    # data
    "Passage",
    "Corpus",
    "load_corpus",
    "load_demo_corpus",
    "load_demo_questions",
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
    # errors
    "S3Error",
    "CorpusFormatError",
    "IndexNotFoundError",
    "RetrieverError",
    "RetrieverUnavailableError",
]
