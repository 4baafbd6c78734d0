"""Qdrant Edge: Qdrant's own engine embedded in the process, the default for ``--backend qdrant``.

An Edge shard is a folder of Qdrant segments (HNSW graph, vectors, payloads, optional scalar,
binary or product quantization) plus a write-ahead log, opened by ``qdrant-edge-py`` without a
server. Here the shard lives inside an index generation (``gen-*/qdrant-edge/``), so a build is
atomic and resumable like every other backend's. Passages are stored as payloads, so the shard
carries the corpus with it.

A shard outgrows one machine by moving to a Qdrant server or cluster: :func:`write_shard_snapshot`
packs it in the layout of a server shard snapshot, and :func:`push_shard_snapshot` uploads it to a
collection's shard (``POST /collections/{name}/shards/{id}/snapshots/upload``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from s3_agents.embedders import Embedder, load_embedder
from s3_agents.errors import BusyError, DataError, IndexFormatError, RetrieverUnavailableError
from s3_agents.locks import atomic_path
from s3_agents.retrievers._store import ChunkEmbedding, IndexStore, feeding
from s3_agents.retrievers.base import DenseRetriever
from s3_agents.types import Passage

__all__ = [
    "QdrantEdgeRetriever", "Quantization", "QUANTIZATIONS", "edge_config", "fill_edge_shard", "open_edge_shard",
    "build_qdrant_edge_index", "write_shard_snapshot", "push_shard_snapshot",
]

logger = logging.getLogger(__name__)

Quantization = Literal["none", "int8", "binary", "pq"]
QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "binary", "pq")
SHARD_DIR = "qdrant-edge"
_UPSERT_BATCH = 1024


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as err:  # pragma: no cover - qdrant-edge-py is a core dependency
        raise ImportError("Qdrant Edge needs qdrant-edge-py: pip install qdrant-edge-py") from err
    return qdrant_edge


def edge_config(dim: int, *, hnsw_m: int = 16, ef_construct: int = 100, quantization: Quantization = "none") -> Any:
    """The ``EdgeConfig`` of an inner-product shard of ``dim``-wide vectors with an HNSW index.

    Args:
        dim: Vector width.
        hnsw_m: HNSW edges per node.
        ef_construct: HNSW candidates kept while building.
        quantization: ``"int8"`` (scalar, 4x smaller), ``"binary"`` (1 bit per dimension, 32x), ``"pq"``
            (product quantization, 16x) or ``"none"``. Quantized search rescores with the original vectors.
    """
    q = _edge()
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    quantized = {
        "none": None,
        "int8": lambda: q.ScalarQuantizationConfig(type=q.ScalarType.Int8, quantile=0.99, always_ram=True),
        "binary": lambda: q.BinaryQuantizationConfig(always_ram=True),
        "pq": lambda: q.ProductQuantizationConfig(compression=q.CompressionRatio.X16, always_ram=True),
    }[quantization]
    return q.EdgeConfig(
        vectors=q.EdgeVectorParams(size=int(dim), distance=q.Distance.Dot),
        hnsw_config=q.HnswIndexConfig(m=int(hnsw_m), ef_construct=int(ef_construct), full_scan_threshold=10),
        quantization_config=quantized() if quantized else None,
        # Index every segment, however small: the whole shard is searched through HNSW.
        optimizers=q.EdgeOptimizersConfig(indexing_threshold=1),
    )


def fill_edge_shard(shard: Any, passages: Sequence[Passage], blocks: Iterable[np.ndarray], *,
                    show_progress: bool = True) -> None:
    """Upsert ``passages`` with their vectors (``blocks``, in passage order), then index and flush the shard.

    Point ``i`` is ``passages[i]``; its payload holds ``doc_id``, ``title`` and ``text``.
    """
    q = _edge()
    bar = tqdm(total=len(passages), desc="qdrant edge", unit="passage", disable=not show_progress)
    start = 0
    for block in blocks:
        for lo in range(0, len(block), _UPSERT_BATCH):
            rows = block[lo:lo + _UPSERT_BATCH]
            first = start + lo
            shard.update(q.UpdateOperation.upsert_points([
                q.Point(first + i, row.tolist(), {"doc_id": p.id, "title": p.title, "text": p.text})
                for i, (row, p) in enumerate(zip(rows, passages[first:first + len(rows)]))
            ]))
            bar.update(len(rows))
        start += len(block)
    bar.close()
    if start != len(passages):
        raise DataError(f"{start} vectors for {len(passages)} passages")
    logger.info("building the HNSW index of %d points", start)
    shard.optimize()
    shard.flush()


def open_edge_shard(path: str | Path) -> Any:
    """Open a Qdrant Edge shard folder.

    Raises:
        BusyError: If another process (or another holder in this one) has it open.
        IndexFormatError: If Qdrant Edge cannot read it.
    """
    q = _edge()
    try:
        return q.EdgeShard.load(str(path))
    except Exception as err:  # qdrant-edge raises plain Exception with the engine's message
        if "WouldBlock" in str(err):
            raise BusyError(f"{path} is open in another process (Qdrant Edge opens a shard in one process at a "
                            "time); serve it once with `s3 serve --index` and query the server") from err
        raise IndexFormatError(f"{path}: Qdrant Edge cannot open the shard: {err}") from err


class QdrantEdgeRetriever(DenseRetriever):
    """Dense retrieval over a Qdrant Edge shard whose points are passages.

    Args:
        shard: An open ``qdrant_edge.EdgeShard``.
        embedder: Embeds the queries (the embedder that built the shard).
        ef_search: HNSW beam width per query (Qdrant's ``hnsw_ef``); ``None``: Qdrant's default.
        oversampling: With quantization, candidates fetched per result before rescoring with the original
            vectors.
        dim: The shard's vector width, when known: checked against the embedder's.

    Example:
        >>> from s3_agents.corpus import load_demo_corpus
        >>> from s3_agents.embedders import HashingEmbedder
        >>> _ = build_qdrant_edge_index(load_demo_corpus().passages, "/tmp/demo-edge", embedder=HashingEmbedder(),
        ...                             show_progress=False)
        >>> with QdrantEdgeRetriever.load("/tmp/demo-edge") as r:
        ...     r.search(["currency of Ketroul"], k=1)[0][0].title
        'Ketroul'
    """

    def __init__(self, shard: Any, embedder: Embedder, *, ef_search: int | None = None,
                 oversampling: float = 2.0, dim: int | None = None) -> None:
        if dim is not None and dim != embedder.dim:
            raise ValueError(f"shard width {dim} != embedder width {embedder.dim} ({embedder.spec})")
        self.shard = shard
        self.embedder = embedder
        self.dim = dim
        self.ef_search: int | None = None
        self.oversampling = float(oversampling)
        if ef_search is not None:
            self.tune(ef_search=ef_search)

    @classmethod
    def load(cls, path: str | Path, *, embedder: Embedder | None = None, ef_search: int | None = None,
             nprobe: int | None = None, **kwargs: Any) -> QdrantEdgeRetriever:
        """Open an index directory written by :func:`build_qdrant_edge_index` (``s3 index build --backend qdrant``).

        ``nprobe`` is accepted and ignored (it is a FAISS IVF setting), so one call can open any index;
        :meth:`tune` refuses it.

        Raises:
            IndexNotFoundError: If no complete index is there.
            BusyError: If another process has the shard open.
        """
        del nprobe
        store = IndexStore(path)
        gen = store.require_current()
        meta = store.read_meta()
        if meta.get("kind") != "qdrant" or meta.get("engine") != "edge":
            raise IndexFormatError(f"{path} holds a {meta.get('kind')!r} index, not a Qdrant Edge one")
        embedder = embedder or load_embedder(meta["embedder"])
        if meta.get("dim") not in (None, embedder.dim):
            raise ValueError(f"{path} holds {meta['dim']}-d vectors; the embedder {embedder.spec} makes "
                             f"{embedder.dim}-d ones")
        if ef_search is None:
            ef_search = meta.get("ef_search")
        return cls(open_edge_shard(gen / SHARD_DIR), embedder, ef_search=ef_search, dim=meta.get("dim"), **kwargs)

    def tune(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Set the HNSW beam width (``ef_search``) used from the next query on.

        Raises:
            ValueError: For ``nprobe`` (no IVF lists in a Qdrant shard) or a width below 1.
        """
        if nprobe is not None:
            raise ValueError(f"nprobe={nprobe} needs an IVF index; a Qdrant Edge shard is HNSW (set ef_search)")
        if ef_search is not None:
            if isinstance(ef_search, bool) or ef_search < 1:
                raise ValueError(f"ef_search must be a positive integer, got {ef_search!r}")
            self.ef_search = int(ef_search)

    def __len__(self) -> int:
        return int(self.shard.info().points_count)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Passage]]:
        q = _edge()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        params = q.SearchParams(hnsw_ef=self.ef_search,
                                quantization=q.QuantizationSearchParams(rescore=True, oversampling=self.oversampling))
        requests = [q.QueryRequest(limit=int(k), query=q.Query.Nearest(v.tolist()), with_payload=True, params=params)
                    for v in vectors]
        results = self.shard.query_batch(q.QueryBatchRequest(requests))
        return [[Passage(id=str(p.payload["doc_id"]), title=p.payload.get("title", ""), text=p.payload.get("text", ""),
                         score=float(p.score)) for p in points] for points in results]

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None


def build_qdrant_edge_index(
    passages: Sequence[Passage],
    path: str | Path,
    *,
    embedder: Embedder,
    hnsw_m: int = 16,
    ef_construct: int = 100,
    ef_search: int | None = None,
    quantization: Quantization = "none",
    chunk_size: int = 2048,
    restart: bool = False,
    distribute: ChunkEmbedding | None = None,
    show_progress: bool = True,
) -> Path:
    """Embed ``passages`` into a Qdrant Edge shard in the index directory ``path``, atomically and resumably.

    Embeddings are saved chunk by chunk (an interrupted build resumes); the shard is written inside a
    new generation that becomes live only when complete.

    Args:
        passages: The corpus.
        path: Index directory.
        embedder: Passage embedder (recorded for queries).
        hnsw_m: HNSW edges per node.
        ef_construct: HNSW build beam.
        ef_search: HNSW search beam recorded as the default for loading.
        quantization: ``"none"``, ``"int8"``, ``"binary"`` or ``"pq"`` (see :func:`edge_config`).
        chunk_size: Passages per saved embedding chunk.
        restart: Discard saved chunks of an interrupted build.
        distribute: Embed the chunks elsewhere, e.g. ``RayEmbedding(address)`` on a Ray cluster.
        show_progress: Show progress bars.

    Returns:
        The directory of the published generation.
    """
    if not passages:
        raise DataError("cannot build an index over an empty corpus")
    config = edge_config(embedder.dim, hnsw_m=hnsw_m, ef_construct=ef_construct, quantization=quantization)
    store = IndexStore(path)
    meta = {"kind": "qdrant", "engine": "edge", "embedder": embedder.spec, "dim": embedder.dim,
            "hnsw_m": hnsw_m, "ef_construct": ef_construct, "ef_search": ef_search, "quantization": quantization}
    with store.build_lock():
        with store.new_generation() as gen:
            shard = _edge().EdgeShard.create(str(gen / SHARD_DIR), config)
            try:
                # Points are written (in a writer thread) while the next chunk is embedded.
                with feeding(lambda blocks: fill_edge_shard(shard, passages, blocks, show_progress=False)) as feed:
                    store.embed_passages(passages, embedder, chunk_size=chunk_size, restart=restart,
                                         show_progress=show_progress, feed=feed, distribute=distribute)
            finally:
                shard.close()
            IndexStore.write_meta(gen, meta, passages)
        store.clear_partial()
        return store.require_current()


# -- moving a shard to a Qdrant server ------------------------------------------------------------

def _add_json(tar: tarfile.TarFile, name: str, value: Any) -> None:
    data = json.dumps(value).encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _segment_archive(segment: Path, out: Path) -> None:
    # A segment in a server snapshot is ``segments/<id>.tar`` holding its files under ``snapshot/files/``.
    with tarfile.open(out, "w") as tar:
        for file in sorted(p for p in segment.rglob("*") if p.is_file()):
            tar.add(file, arcname=f"snapshot/files/{file.relative_to(segment).as_posix()}", recursive=False)


def write_shard_snapshot(shard_dir: str | Path, out: str | Path) -> Path:
    """Pack a closed Qdrant Edge shard as a Qdrant shard snapshot (a tar archive) at ``out``, atomically.

    The archive holds what a server's own shard snapshot holds: ``segments/<id>.tar`` (each segment's
    files under ``snapshot/files/``), the write-ahead log ``wal/`` (it carries the operation numbers
    the segments were written at, so later writes on the server are not mistaken for old ones), and
    ``shard_config.json`` / ``replica_state.json`` naming a local, active replica. Qdrant Edge's
    :meth:`EdgeShard.unpack_snapshot` reads it back.

    Args:
        shard_dir: The shard folder (an index's ``gen-*/qdrant-edge``), not open in any process.
        out: The snapshot file to write.

    Returns:
        ``out``.
    """
    shard_dir, out = Path(shard_dir), Path(out)
    segments = shard_dir / "segments"
    if not segments.is_dir():
        raise IndexFormatError(f"{shard_dir} is not a Qdrant Edge shard (no segments/ folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, tarfile.open(tmp, "w") as tar:
        for segment in sorted(p for p in segments.iterdir() if p.is_dir() and not p.name.startswith(".")):
            inner = tmp.with_name(f".{segment.name}.{uuid.uuid4().hex}.tar")
            try:
                _segment_archive(segment, inner)
                tar.add(inner, arcname=f"segments/{segment.name}.tar")
            finally:
                inner.unlink(missing_ok=True)
        wal = shard_dir / "wal"
        if wal.is_dir():
            tar.add(wal, arcname="wal")
        _add_json(tar, "shard_config.json", {"type": "ReplicaSet"})
        _add_json(tar, "replica_state.json", {"is_local": True, "this_peer_id": 0, "peers": {"0": "Active"}})
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def push_shard_snapshot(
    snapshot: str | Path,
    url: str,
    collection: str,
    *,
    dim: int,
    api_key: str | None = None,
    shard_id: int = 0,
    hnsw_m: int = 16,
    ef_construct: int = 100,
    timeout: int = 600,
) -> None:
    """Upload a shard snapshot to shard ``shard_id`` of ``collection`` on a Qdrant server, creating the collection
    (``dim``-wide dot-product vectors) when it is missing.

    The upload is Qdrant's ``POST /collections/{collection}/shards/{shard_id}/snapshots/upload`` with
    ``priority=snapshot`` and the file's SHA-256 ``checksum``, sent by qdrant-client. It replaces what that
    shard held on the node that receives it.

    Raises:
        RetrieverUnavailableError: If the server cannot be reached or refuses the upload (the URL is named).
    """
    from qdrant_client.http import models

    from s3_agents.retrievers.qdrant import make_qdrant_client

    path = Path(snapshot)
    client = make_qdrant_client(url=url, api_key=api_key, timeout=timeout)
    try:
        if not client.collection_exists(collection):
            client.create_collection(collection, vectors_config=models.VectorParams(
                size=int(dim), distance=models.Distance.DOT,
                hnsw_config=models.HnswConfigDiff(m=hnsw_m, ef_construct=ef_construct)))
        with open(path, "rb") as handle:
            client.http.snapshots_api.recover_shard_from_uploaded_snapshot(
                collection_name=collection, shard_id=shard_id, wait=True,
                priority=models.SnapshotPriority.SNAPSHOT, checksum=_sha256(path), snapshot=handle)
    except Exception as err:
        if not _is_transport(err):
            raise
        raise RetrieverUnavailableError(url, f"pushing {path.name} to the Qdrant server at {url} (collection "
                                             f"{collection!r}, shard {shard_id}) failed: {err}") from err
    finally:
        client.close()


def _is_transport(err: BaseException) -> bool:
    """An error of the HTTP layer or a refusal by the server (not a bug here)."""
    return type(err).__module__.startswith(("httpx", "httpcore", "qdrant_client"))
