"""Qdrant retriever through qdrant-client: a Qdrant server or cluster (and qdrant-client's in-memory mode).

A ``QdrantClient`` is built from a URL (server) or ``":memory:"``, then queried with
``query_batch_points``. The embedded engine for index directories is Qdrant Edge
(:mod:`s3_agents.retrievers.qdrant_edge`); qdrant-client's local mode is a pure-Python brute
force kept for tests and for indexes built with it by earlier versions.

Builds are atomic through a collection alias: passages are written to a fresh collection
``<name>--<stamp>``, and only when it is complete is the alias ``<name>`` switched to it.
A killed build leaves the alias on the previous collection (or absent).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from s3_agents.embedders import Embedder, load_embedder
from s3_agents.errors import DataError, IndexFormatError
from s3_agents.retrievers._store import ChunkEmbedding, IndexStore
from s3_agents.retrievers.base import DenseRetriever
from s3_agents.types import Passage

__all__ = ["QdrantRetriever", "build_qdrant_collection", "build_qdrant_index", "make_qdrant_client"]

logger = logging.getLogger(__name__)

_STORAGE_DIR = "qdrant-storage"
_SEP = "--"


def _qdrant() -> Any:
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError as err:  # pragma: no cover - qdrant-client is a core dependency
        raise ImportError("Qdrant needs qdrant-client: pip install qdrant-client") from err
    return qdrant_client, models


def make_qdrant_client(
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: str | Path | None = None,
    timeout: int | None = None,
) -> Any:
    """A ``QdrantClient``: server mode with ``url``, on-disk local mode with ``path``, else in memory.

    The API key defaults to the ``QDRANT_API_KEY`` environment variable (server mode only).
    """
    qdrant_client, _ = _qdrant()
    if url and path:
        raise ValueError("give either url (Qdrant server) or path (local on-disk mode), not both")
    if url:
        return qdrant_client.QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                                          timeout=timeout)
    if path:
        return qdrant_client.QdrantClient(path=str(path))
    return qdrant_client.QdrantClient(":memory:")


class QdrantRetriever(DenseRetriever):
    """Dense retrieval over a Qdrant collection whose payloads hold ``doc_id``, ``title``, ``text``.

    Args:
        client: A ``QdrantClient`` (local or server).
        collection: Collection or alias name.
        embedder: Embeds the queries (the embedder that built the collection).
        owns_client: Close ``client`` in :meth:`close`.

    Example:
        >>> from s3_agents.corpus import load_demo_corpus
        >>> from s3_agents.embedders import HashingEmbedder
        >>> client = make_qdrant_client()                      # in memory
        >>> emb = HashingEmbedder()
        >>> _ = build_qdrant_collection(load_demo_corpus().passages, client, "demo", emb,
        ...                             show_progress=False)
        >>> QdrantRetriever(client, "demo", emb).search(["currency of Ketroul"], k=1)[0][0].title
        'Ketroul'
    """

    def __init__(self, client: Any, collection: str, embedder: Embedder, *, owns_client: bool = False) -> None:
        self.client = client
        self.collection = collection
        self.embedder = embedder
        self._owns_client = owns_client

    @classmethod
    def load(cls, path: str | Path, *, embedder: Embedder | None = None, api_key: str | None = None) -> QdrantRetriever:
        """Open an index directory written by :func:`build_qdrant_index` / ``s3 index build --backend qdrant``."""
        store = IndexStore(path)
        store.require_current()
        meta = store.read_meta()
        if meta.get("kind") != "qdrant":
            raise IndexFormatError(f"{path} holds a {meta.get('kind')!r} index, not a Qdrant one")
        if meta.get("url"):
            client = make_qdrant_client(url=meta["url"], api_key=api_key)
        else:  # qdrant-client local mode, built by s3-agents before Qdrant Edge
            client = make_qdrant_client(path=Path(path) / _STORAGE_DIR)
        return cls(client, meta["collection"], embedder or load_embedder(meta["embedder"]), owns_client=True)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Passage]]:
        _, models = _qdrant()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        requests = [models.QueryRequest(query=v.tolist(), limit=k, with_payload=True) for v in vectors]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [
            [Passage(id=str(p.payload["doc_id"]), title=p.payload.get("title", ""),
                     text=p.payload.get("text", ""), score=float(p.score)) for p in response.points]
            for response in responses
        ]

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _aliases(client: Any) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def build_qdrant_collection(
    passages: Sequence[Passage],
    client: Any,
    collection: str,
    embedder: Embedder,
    *,
    vectors: np.ndarray | None = None,
    batch_size: int = 256,
    show_progress: bool = True,
) -> str:
    """Write ``passages`` to a fresh collection and point the alias ``collection`` at it.

    Args:
        passages: The corpus.
        client: A ``QdrantClient`` (local or server: the same calls).
        collection: The alias name queries will use.
        embedder: Passage embedder (ignored when ``vectors`` is given).
        vectors: Precomputed passage vectors, ``(len(passages), dim)``.
        batch_size: Points per upsert.
        show_progress: Show a progress bar.

    Returns:
        The name of the concrete collection now behind the alias.
    """
    _, models = _qdrant()
    if not passages:
        raise DataError("cannot build an index over an empty corpus")
    aliases = _aliases(client)
    if collection not in aliases and client.collection_exists(collection):
        raise IndexFormatError(
            f"a collection named {collection!r} already exists and is not an s3-agents alias; "
            "choose another --collection name or delete it"
        )
    if vectors is None:
        vectors = embedder.embed_passages([p.contents for p in passages], show_progress=show_progress)
    target = f"{collection}{_SEP}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    client.create_collection(target, vectors_config=models.VectorParams(
        size=int(vectors.shape[1]), distance=models.Distance.DOT))
    try:
        bar = tqdm(total=len(passages), desc="qdrant upsert", unit="passage", disable=not show_progress)
        for lo in range(0, len(passages), batch_size):
            chunk = passages[lo:lo + batch_size]
            client.upsert(target, wait=True, points=models.Batch(
                ids=list(range(lo, lo + len(chunk))),
                vectors=vectors[lo:lo + len(chunk)].tolist(),
                payloads=[{"doc_id": p.id, "title": p.title, "text": p.text} for p in chunk],
            ))
            bar.update(len(chunk))
        bar.close()
    except BaseException:
        client.delete_collection(target)
        raise
    operations = []
    old = aliases.get(collection)
    if old is not None:
        operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=collection)))
    operations.append(models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name=target, alias_name=collection)))
    client.update_collection_aliases(change_aliases_operations=operations)
    # Drop the previous collection and leftovers of interrupted builds.
    live = set(_aliases(client).values())
    for description in client.get_collections().collections:
        name = description.name
        if name.startswith(collection + _SEP) and name not in live:
            client.delete_collection(name)
    return target


def build_qdrant_index(
    passages: Sequence[Passage],
    path: str | Path,
    *,
    embedder: Embedder,
    url: str,
    collection: str = "s3",
    api_key: str | None = None,
    chunk_size: int = 2048,
    restart: bool = False,
    distribute: ChunkEmbedding | None = None,
    show_progress: bool = True,
) -> Path:
    """Build a collection on the Qdrant server at ``url`` and record it in the index directory ``path``.

    ``path`` keeps only the metadata (URL, collection, embedder; never the API key). Embeddings are
    saved as they are computed, so an interrupted build resumes. For an index stored in ``path``
    itself, use :func:`~s3_agents.retrievers.qdrant_edge.build_qdrant_edge_index`.

    Returns:
        The directory of the published generation.
    """
    if not passages:
        raise DataError("cannot build an index over an empty corpus")
    if not url:
        raise ValueError("build_qdrant_index writes to a Qdrant server: give its url "
                         "(embedded: build_qdrant_edge_index)")
    store = IndexStore(path)
    with store.build_lock():
        vectors = store.embed_passages(passages, embedder, chunk_size=chunk_size, restart=restart,
                                       show_progress=show_progress, distribute=distribute).to_array()
        Path(path).mkdir(parents=True, exist_ok=True)
        client = make_qdrant_client(url=url, api_key=api_key)
        try:
            build_qdrant_collection(passages, client, collection, embedder, vectors=vectors,
                                    show_progress=show_progress)
        finally:
            client.close()
        meta = {"kind": "qdrant", "collection": collection, "url": url, "embedder": embedder.spec,
                "dim": embedder.dim}
        with store.new_generation() as gen:
            IndexStore.write_meta(gen, meta, passages)
        store.clear_partial()
        return store.require_current()
