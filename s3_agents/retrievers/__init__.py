"""Retrievers: FAISS, Qdrant, BM25 and remote, behind one batched ``search(queries, k)`` protocol.

Build an index directory with :func:`build_index` (or ``s3 index build``) and open it with
:func:`load_retriever`, which also accepts the URL of a retrieval server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from s3_agents.embedders import Embedder
from s3_agents.errors import IndexFormatError
from s3_agents.retrievers._store import IndexStore
from s3_agents.retrievers.base import DenseRetriever, Retriever
from s3_agents.retrievers.bm25 import BM25Retriever, build_bm25_index
from s3_agents.retrievers.faiss import FaissRetriever, build_faiss_index
from s3_agents.retrievers.qdrant import QdrantRetriever, build_qdrant_index
from s3_agents.retrievers.qdrant_edge import QdrantEdgeRetriever, build_qdrant_edge_index
from s3_agents.retrievers.remote import RemoteRetriever
from s3_agents.types import Passage

__all__ = [
    "Retriever",
    "DenseRetriever",
    "FaissRetriever",
    "QdrantRetriever",
    "QdrantEdgeRetriever",
    "BM25Retriever",
    "RemoteRetriever",
    "Backend",
    "build_index",
    "load_retriever",
]

Backend = Literal["faiss", "qdrant", "bm25"]


def build_index(
    passages: Sequence[Passage],
    path: str | Path,
    *,
    backend: Backend = "faiss",
    embedder: Embedder | None = None,
    **options: Any,
) -> Path:
    """Build an index directory for any backend.

    Args:
        passages: The corpus.
        path: Index directory.
        backend: ``"faiss"``, ``"qdrant"`` or ``"bm25"``.
        embedder: Passage embedder (dense backends; defaults to the offline MiniLM).
        **options: Backend options, e.g. ``index_type="hnsw"`` (FAISS), ``quantization="int8"`` (Qdrant
            Edge), ``url=`` and ``collection=`` (a Qdrant server instead of Edge), ``k1=`` (BM25),
            ``restart=True``, ``show_progress=False``.

    Returns:
        The directory of the published generation.

    Example:
        >>> from s3_agents.corpus import load_demo_corpus
        >>> _ = build_index(load_demo_corpus().passages, "/tmp/demo-bm25", backend="bm25",
        ...                 show_progress=False)
        >>> load_retriever("/tmp/demo-bm25").search(["river through Gritia"], k=2)[0][0].title
        'Gritia'
    """
    if backend == "bm25":
        options.pop("restart", None)
        return build_bm25_index(passages, path, **options)
    if backend not in ("faiss", "qdrant"):
        raise ValueError(f"backend must be 'faiss', 'qdrant' or 'bm25', got {backend!r}")
    if embedder is None:
        from s3_agents.embedders import load_embedder

        embedder = load_embedder()
    if backend == "faiss":
        return build_faiss_index(passages, path, embedder=embedder, **options)
    if options.get("url"):
        return build_qdrant_index(passages, path, embedder=embedder, **options)
    for server_only in ("url", "collection", "api_key"):
        options.pop(server_only, None)
    return build_qdrant_edge_index(passages, path, embedder=embedder, **options)


def load_retriever(location: str | Path, **options: Any) -> Retriever:
    """Open a retriever: an index directory of any backend, or a retrieval server URL.

    Args:
        location: Index directory, or ``http(s)://host:port[/retrieve]``.
        **options: Passed to the backend's ``load`` (``embedder=``, ``gpu=``, ``nprobe=``,
            ``api_key=``...) or to :class:`RemoteRetriever`.

    Raises:
        IndexNotFoundError: If the directory holds no complete index.
    """
    text = str(location)
    if text.startswith(("http://", "https://")):
        return RemoteRetriever(text, **options)
    meta = IndexStore(location).read_meta()
    kind = meta.get("kind")
    if kind == "faiss":
        return FaissRetriever.load(location, **options)
    if kind == "qdrant" and meta.get("engine") == "edge":
        return QdrantEdgeRetriever.load(location, **options)
    if kind == "qdrant":
        return QdrantRetriever.load(location, **options)
    if kind == "bm25":
        return BM25Retriever.load(location, **options)
    raise IndexFormatError(f"{location}: unknown index kind {kind!r} in meta.json")
