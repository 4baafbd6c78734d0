"""FAISS retriever: flat inner product, HNSW and IVF indexes, on GPU when faiss-gpu is present."""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from s3_agents.embedders import Embedder, load_embedder
from s3_agents.errors import DataError, IndexFormatError, NoGPUError
from s3_agents.retrievers._store import ChunkEmbedding, IndexStore, PassageFile, feeding
from s3_agents.retrievers.base import DenseRetriever
from s3_agents.types import Passage

__all__ = [
    "FaissRetriever", "IndexType", "build_faiss_index", "make_faiss_index", "new_faiss_index", "fill_faiss_index",
    "faiss_factory", "default_nlist", "default_pq_m", "training_size", "gpu_count", "DiskVectors", "write_disk_vectors",
]

logger = logging.getLogger(__name__)

IndexType = Literal["flat", "hnsw", "ivf", "ivfpq", "opq"]
_INDEX_FILE = "index.faiss"
_VECTORS_FILE = "vectors.f32"
_ADD_BATCH = 65_536
_OPQ_MIN_TRAIN = 1_000
REFINE_K_FACTOR = 4
_RERANK_ROWS = 4096


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a core dependency
        raise ImportError("FAISS is missing: pip install faiss-cpu (or s3-agents[gpu])") from err
    return faiss


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 with faiss-cpu)."""
    faiss = _faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def default_nlist(n: int) -> int:
    """IVF list count: about 4 sqrt(n), but at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def default_pq_m(dim: int) -> int:
    """PQ sub-quantizers: one per 8 dimensions (a 384-d vector becomes 48 one-byte codes), dividing ``dim``."""
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return m


def faiss_factory(index_type: IndexType, n: int, dim: int, *, hnsw_m: int = 32, nlist: int | None = None,
                  pq_m: int | None = None) -> str:
    """The FAISS index-factory string of a named index type, sized for ``n`` vectors of ``dim`` dimensions.

    Example:
        >>> faiss_factory("opq", 1_000_000, 384)
        'OPQ48,IVF4000,PQ48'
    """
    nlist = nlist or default_nlist(n)
    m = pq_m or default_pq_m(dim)
    factories = {"flat": "Flat", "hnsw": f"HNSW{hnsw_m},Flat", "ivf": f"IVF{nlist},Flat",
                 "ivfpq": f"IVF{nlist},PQ{m}", "opq": f"OPQ{m},IVF{nlist},PQ{m}"}
    if index_type not in factories:
        raise ValueError(f"index_type must be one of {', '.join(factories)}, got {index_type!r}")
    return factories[index_type]


def _ivf(index: Any) -> Any:
    """The IVF part of ``index`` (also inside a pre-transform such as OPQ), or ``None``."""
    try:
        return _faiss().extract_index_ivf(index)
    except RuntimeError:
        return None


def _has_opq(index: Any) -> bool:
    faiss = _faiss()
    if not isinstance(index, faiss.IndexPreTransform):
        return False
    return any(isinstance(faiss.downcast_VectorTransform(index.chain.at(i)), faiss.OPQMatrix)
               for i in range(index.chain.size()))


def _hnsw(index: Any) -> Any:
    faiss = _faiss()
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def new_faiss_index(factory: str, dim: int, *, ef_construction: int = 200) -> Any:
    """An empty inner-product index from a FAISS index-factory string (``"OPQ64,IVF65536,PQ64"``).

    Raises:
        ValueError: If FAISS does not understand ``factory``.
    """
    faiss = _faiss()
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise ValueError(f"FAISS cannot make an index from {factory!r} for {dim} dimensions: {first}") from err
    hnsw = _hnsw(index)
    if hnsw is not None:
        hnsw.hnsw.efConstruction = ef_construction
    refine = faiss.downcast_index(index)
    if isinstance(refine, faiss.IndexRefine):
        # A refining index (",RFlat", ",Refine(SQ8)") reranks k_factor * k candidates of its coarse codes; FAISS's
        # default of 1 reranks only the k it returns, which changes nothing.
        refine.k_factor = REFINE_K_FACTOR
    ivf = _ivf(index)
    for part in (faiss.downcast_index(ivf) if ivf is not None else None, index):
        if hasattr(part, "do_polysemous_training"):
            # The factory turns it on; it serves only polysemous search (unused here) and makes training
            # 50x slower.
            part.do_polysemous_training = False
    return index


def training_size(index: Any, n: int) -> int:
    """Vectors to train ``index`` on: none for an index that needs no training, else 50 per IVF list
    (and at least 10,000, what 256 PQ centroids need), at most ``n``."""
    if index.is_trained:
        return 0
    ivf = _ivf(index)
    return min(n, max(50 * (ivf.nlist if ivf is not None else 0), 10_000))


def fill_faiss_index(index: Any, blocks: Iterable[np.ndarray], *, sample: Callable[[int], np.ndarray],
                     n: int, show_progress: bool = False) -> Any:
    """Train ``index`` on a sample (when it needs training), then add the vectors block by block.

    Args:
        index: An empty index (:func:`new_faiss_index`).
        blocks: The vectors in corpus order, in blocks (never all in memory at once).
        sample: ``sample(size)`` returns ``size`` training vectors.
        n: Total number of vectors.
        show_progress: Show a progress bar over the adds.
    """
    size = training_size(index, n)
    if size:
        ivf = _ivf(index)
        if ivf is not None and n < ivf.nlist:
            raise DataError(f"an IVF index with nlist={ivf.nlist} needs at least {ivf.nlist} passages, got {n}")
        if _has_opq(index) and n < _OPQ_MIN_TRAIN:  # FAISS corrupts memory training OPQ on a few hundred
            raise DataError(f"an OPQ index needs at least {_OPQ_MIN_TRAIN:,} passages to train on, got {n}; "
                            "use ivfpq for a corpus this small")
        train = sample(size)
        logger.info("training the FAISS index on %d vectors", len(train))
        try:
            index.train(train)
        except RuntimeError as err:  # FAISS's own checks, e.g. fewer points than PQ centroids
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
            raise DataError(f"training the FAISS index on {len(train)} vectors failed: {reason}") from err
    bar = tqdm(total=n, desc="indexing", unit="vector", disable=not show_progress)
    for block in blocks:
        for lo in range(0, len(block), _ADD_BATCH):
            part = np.ascontiguousarray(block[lo:lo + _ADD_BATCH], dtype=np.float32)
            index.add(part)
            bar.update(len(part))
    bar.close()
    return index


def make_faiss_index(
    vectors: np.ndarray,
    index_type: IndexType = "flat",
    *,
    factory: str | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 200,
    nlist: int | None = None,
    pq_m: int | None = None,
    seed: int = 0,
) -> Any:
    """Build a CPU FAISS inner-product index over ``vectors`` (``(n, dim)`` float32), in memory.

    Args:
        vectors: Normalised passage vectors.
        index_type: ``"flat"`` (exact), ``"hnsw"`` (graph, fast, approximate), ``"ivf"`` (inverted lists),
            ``"ivfpq"`` (inverted lists of product-quantized codes: about 1/32 of the memory of flat) or
            ``"opq"`` (IVF-PQ after a learned rotation, better recall at the same size).
        factory: Any FAISS index-factory string instead (``"IVF1024,SQ8"``); overrides ``index_type``.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        nlist: IVF list count (default: :func:`default_nlist`).
        pq_m: PQ sub-quantizers (default: :func:`default_pq_m`).
        seed: Seed of the training sample.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
    n, dim = vectors.shape
    description = factory or faiss_factory(index_type, n, dim, hnsw_m=hnsw_m, nlist=nlist, pq_m=pq_m)
    index = new_faiss_index(description, dim, ef_construction=ef_construction)
    rng = np.random.default_rng(seed)

    def sample(size: int) -> np.ndarray:
        return vectors if size >= n else vectors[np.sort(rng.choice(n, size=size, replace=False))]

    return fill_faiss_index(index, [vectors] if n else [], sample=sample, n=n)


class FaissRetriever(DenseRetriever):
    """Dense retrieval over a FAISS inner-product index.

    Args:
        index: A FAISS index whose row ``i`` is ``passages[i]``.
        passages: The passages, in index order.
        embedder: Embeds the queries (must be the embedder that built the index).
        nprobe: IVF lists visited per query (IVF indexes, IVF-PQ and OPQ included; default 16). More lists:
            better recall, slower search. :meth:`tune` changes it later.
        ef_search: HNSW search beam width (HNSW indexes only).
        gpu: ``True`` to move the index to all GPUs (error without faiss-gpu), ``None`` to do so
            when GPUs are visible, ``False`` to stay on CPU. HNSW stays on CPU (FAISS has no GPU HNSW).

    Example:
        >>> from s3_agents.embedders import HashingEmbedder
        >>> from s3_agents.corpus import load_demo_corpus
        >>> r = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
        >>> r.search(["currency of Ketroul"], k=1)[0][0].title
        'Ketroul'
    """

    def __init__(
        self,
        index: Any,
        passages: Sequence[Passage],
        embedder: Embedder,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        gpu: bool | None = False,
        rerank: DiskVectors | None = None,
        k_factor: float = REFINE_K_FACTOR,
    ) -> None:
        if index.ntotal != len(passages):
            raise ValueError(f"index holds {index.ntotal} vectors but {len(passages)} passages were given")
        if index.d != embedder.dim:
            raise ValueError(f"index width {index.d} != embedder width {embedder.dim} ({embedder.spec})")
        self.embedder = embedder
        self.passages = passages if isinstance(passages, PassageFile) else list(passages)
        ivf = _ivf(index)
        self.index_type: str = "ivf" if ivf is not None else "hnsw" if _hnsw(index) is not None else "flat"
        """``"ivf"`` (any IVF index: flat, PQ or OPQ lists), ``"hnsw"`` or ``"flat"`` (anything else)."""
        if ivf is not None and nprobe is None:
            nprobe = min(ivf.nlist, 16)
        self.index = index
        # Settings of the other kind of index are ignored here (one call can serve any index); tune() is strict.
        self.tune(nprobe=nprobe if self.index_type == "ivf" else None,
                  ef_search=ef_search if self.index_type == "hnsw" else None)
        self.index = self._maybe_to_gpu(index, gpu)
        self.rerank = rerank
        """Full vectors on disk that the index's candidates are rescored with, or ``None``."""
        if rerank is not None and (rerank.rows != index.ntotal or rerank.dim != index.d):
            raise IndexFormatError(f"{rerank.path} holds {rerank.rows} x {rerank.dim} vectors for an index of "
                                   f"{index.ntotal} x {index.d}")
        self.k_factor = float(k_factor)

    def tune(self, *, nprobe: int | None = None, ef_search: int | None = None, k_factor: float | None = None) -> None:
        """Set the search effort at query time: ``nprobe`` IVF lists, or an HNSW beam of ``ef_search``; for a
        refining index (``...,RFlat``, ``...,Refine(SQ8)``) also ``k_factor``, the candidates reranked per result.

        Raises:
            ValueError: If the setting does not apply to this index (``nprobe`` on HNSW, say).
        """
        faiss = _faiss()
        space = faiss.GpuParameterSpace() if self._on_gpu() else faiss.ParameterSpace()
        for name, value, kind in (("nprobe", nprobe, "ivf"), ("efSearch", ef_search, "hnsw")):
            if value is None:
                continue
            if self.index_type != kind or value < 1:
                raise ValueError(f"{name}={value} needs a positive value and an {kind.upper()} index; this one is "
                                 f"{self.index_type}")
            space.set_index_parameter(self.index, name, int(value))
        if k_factor is not None:
            refine = faiss.downcast_index(self.index)
            if k_factor < 1 or not (isinstance(refine, faiss.IndexRefine) or getattr(self, "rerank", None)):
                raise ValueError(f"k_factor={k_factor} needs a value of at least 1 and a refining index "
                                 "(a factory string ending in ,RFlat or ,Refine(...), or one built with rerank)")
            if isinstance(refine, faiss.IndexRefine):
                refine.k_factor = float(k_factor)
            else:
                self.k_factor = float(k_factor)

    def _on_gpu(self) -> bool:
        return "Gpu" in type(self.index).__name__ or "Shards" in type(self.index).__name__

    def _maybe_to_gpu(self, index: Any, gpu: bool | None) -> Any:
        if gpu is False:
            return index
        n_gpus = gpu_count()
        if n_gpus == 0:
            if gpu:
                raise NoGPUError("gpu=True but FAISS sees no GPU; install faiss-gpu (s3-agents[gpu])")
            return index
        if self.index_type == "hnsw":
            logger.warning("FAISS has no GPU HNSW; keeping the HNSW index on CPU")
            return index
        faiss = _faiss()
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        logger.info("moving the FAISS index to %d GPU(s)", n_gpus)
        return faiss.index_cpu_to_all_gpus(index, co=options)

    @classmethod
    def from_passages(
        cls,
        passages: Sequence[Passage],
        embedder: Embedder,
        *,
        index_type: IndexType = "flat",
        show_progress: bool = False,
        **kwargs: Any,
    ) -> FaissRetriever:
        """Embed ``passages`` and index them in memory (nothing is written to disk)."""
        vectors = embedder.embed_passages([p.contents for p in passages], show_progress=show_progress)
        index = make_faiss_index(vectors.reshape(-1, embedder.dim), index_type)
        return cls(index, passages, embedder, **kwargs)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        embedder: Embedder | None = None,
        mmap: bool = True,
        **kwargs: Any,
    ) -> FaissRetriever:
        """Open an index written by :func:`build_faiss_index` (or ``s3 index build``).

        Args:
            path: The index directory.
            embedder: Query embedder; by default the one recorded in the index metadata.
            mmap: Map the index file into memory read-only instead of reading it: it opens at once and
                its pages are shared by every process serving it.
            **kwargs: ``nprobe``, ``ef_search``, ``gpu`` (see the class); default: the build's.

        Raises:
            IndexNotFoundError: If no complete index is there.
            ValueError: If the index was built by another backend.
        """
        store = IndexStore(path)
        gen = store.require_current()
        meta = store.read_meta()
        if meta.get("kind") != "faiss":
            raise IndexFormatError(f"{path} holds a {meta.get('kind')!r} index, not a FAISS one")
        faiss = _faiss()
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(gen / _INDEX_FILE), flags)
        embedder = embedder or load_embedder(meta["embedder"])
        if meta.get("rerank"):
            kwargs.setdefault("rerank", DiskVectors(gen / meta["rerank"]["file"], int(meta["dim"])))
            kwargs.setdefault("k_factor", meta["rerank"]["k_factor"])
        kwargs.setdefault("nprobe", meta.get("nprobe"))
        kwargs.setdefault("ef_search", meta.get("ef_search"))
        kwargs.setdefault("gpu", None)
        return cls(index, IndexStore.read_passages(gen), embedder, **kwargs)

    def __len__(self) -> int:
        return len(self.passages)

    def _reranked(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's top ``k_factor * k`` candidates, rescored exactly with the vectors on disk."""
        assert self.rerank is not None
        wide = min(len(self.passages), max(k, int(math.ceil(self.k_factor * k))))
        _, candidates = self.index.search(vectors, wide)
        found = np.where(candidates >= 0, candidates, 0)
        exact = np.empty(candidates.shape, dtype=np.float32)
        step = max(1, _RERANK_ROWS // wide)       # bounds the candidate vectors held at once
        for lo in range(0, len(vectors), step):
            rows = self.rerank.take(found[lo:lo + step])
            exact[lo:lo + step] = np.einsum("qcd,qd->qc", rows, vectors[lo:lo + step])
        exact[candidates < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(candidates, order, axis=1)
        return np.take_along_axis(exact, order, axis=1), ids

    def close(self) -> None:
        if self.rerank is not None:
            self.rerank.close()

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Passage]]:
        if vectors.dtype != np.float32 or vectors.ndim != 2 or not vectors.flags.c_contiguous:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.index.d)
        k = min(k, len(self.passages))
        if k == 0:
            return [[] for _ in range(len(vectors))]
        if self.rerank is not None:
            scores, ids = self._reranked(vectors, k)
        else:
            scores, ids = self.index.search(vectors, k)
        # Hot path (the benchmark holds it to >= 0.9x raw FAISS): build passages directly, and
        # pause the cyclic GC, which otherwise rescans every stored passage while thousands of
        # small result objects are allocated. None of them can form a cycle.
        passages, make = self.passages, Passage
        out = []
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for row_ids, row_scores in zip(ids.tolist(), scores.tolist()):
                hits = []
                for i, score in zip(row_ids, row_scores):
                    if i >= 0:
                        p = passages[i]
                        hits.append(make(p.id, p.title, p.text, score))
                out.append(hits)
        finally:
            if gc_was_enabled:
                gc.enable()
        return out


def _no_sample(size: int) -> np.ndarray:
    raise AssertionError("an index that needs no training asked for a training sample")


class DiskVectors:
    """Full float32 vectors in a raw file (row ``i`` is passage ``i``), read a few rows at a time with ``pread``.

    Rows read for reranking go through the OS page cache, not this process's memory: a compressed index whose
    codes fit in RAM can rerank exactly from vectors that do not.

    Args:
        path: A file of ``n * dim`` little-endian float32 (written by :func:`write_disk_vectors`).
        dim: Vector width.
    """

    def __init__(self, path: str | Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = int(dim)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._row = self.dim * 4
        size = os.fstat(self._fd).st_size
        if size % self._row:
            os.close(self._fd)
            raise IndexFormatError(f"{self.path}: {size} bytes is not a whole number of {self.dim}-d float32 rows")
        self.rows = size // self._row

    def take(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of ``ids`` (any shape of non-negative row numbers), shaped ``ids.shape + (dim,)``."""
        flat = np.asarray(ids, dtype=np.int64).ravel()
        unique, where = np.unique(flat, return_inverse=True)
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        view = memoryview(out).cast("B")
        for j, row in enumerate(unique.tolist()):
            os.preadv(self._fd, [view[j * self._row:(j + 1) * self._row]], row * self._row)
        return out[where].reshape(*np.shape(ids), self.dim)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_disk_vectors(blocks: Iterable[np.ndarray], path: Path) -> None:
    """Write vectors block by block as the raw float32 file :class:`DiskVectors` reads."""
    with open(path, "wb") as handle:
        for block in blocks:
            handle.write(np.ascontiguousarray(block, dtype="<f4").tobytes())


def build_faiss_index(
    passages: Sequence[Passage],
    path: str | Path,
    *,
    embedder: Embedder,
    index_type: IndexType = "flat",
    factory: str | None = None,
    hnsw_m: int = 32,
    ef_search: int = 128,
    nlist: int | None = None,
    pq_m: int | None = None,
    nprobe: int | None = None,
    rerank: bool = False,
    chunk_size: int = 2048,
    restart: bool = False,
    distribute: ChunkEmbedding | None = None,
    show_progress: bool = True,
) -> Path:
    """Embed ``passages`` and write a FAISS index directory, atomically and resumably.

    Embeddings are saved chunk by chunk, so a build that is killed resumes from the last saved
    chunk when run again (``restart=True`` starts over). An index that needs training (IVF, PQ) is
    trained on a sample of them, then they are added chunk by chunk: a compressed index of a corpus
    whose vectors do not fit in memory builds in the memory of its codes. The index becomes visible
    only once complete: until then :meth:`FaissRetriever.load` opens the previous index, or finds none.

    Args:
        passages: The corpus.
        path: Index directory (created if needed).
        embedder: Passage embedder; its spec is recorded so queries use the same one.
        index_type: ``"flat"``, ``"hnsw"``, ``"ivf"``, ``"ivfpq"`` or ``"opq"`` (see :func:`make_faiss_index`).
        factory: Any FAISS index-factory string instead (``"OPQ64,IVF65536,PQ64"``).
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW search beam width stored as the default for loading.
        nlist: IVF list count (default about 4 sqrt(n)).
        pq_m: PQ sub-quantizers (default one per 8 dimensions).
        nprobe: IVF lists searched per query, stored as the default for loading.
        rerank: Also store the full vectors on disk (``vectors.f32``, 4 bytes per dimension) and rescore each
            query's ``k_factor * k`` candidates with them: exact scores and recall near flat's from a compressed
            index whose codes alone stay in memory.
        chunk_size: Passages embedded per saved chunk.
        restart: Discard saved chunks of an interrupted build.
        distribute: Embed the chunks elsewhere, e.g. ``RayEmbedding(address)`` on a Ray cluster.
        show_progress: Show progress bars.

    Returns:
        The directory of the published generation.

    Example:
        >>> from s3_agents.corpus import load_demo_corpus
        >>> from s3_agents.embedders import load_embedder
        >>> build_faiss_index(load_demo_corpus().passages, "/tmp/demo-faiss", index_type="hnsw",
        ...                   embedder=load_embedder("minilm"))          # doctest: +SKIP
        >>> FaissRetriever.load("/tmp/demo-faiss").search(["..."], k=3)  # doctest: +SKIP
    """
    if not passages:
        raise DataError("cannot build an index over an empty corpus")
    n = len(passages)
    description = factory or faiss_factory(index_type, n, embedder.dim, hnsw_m=hnsw_m, nlist=nlist, pq_m=pq_m)
    index = new_faiss_index(description, embedder.dim)  # a bad factory string fails before any embedding
    store = IndexStore(path)
    with store.build_lock():
        if index.is_trained:
            # Nothing to train: each chunk is added (in a writer thread) while the next one is embedded. FAISS and
            # torch share one OpenMP runtime, so its thread count is left alone: setting it for FAISS here would
            # set it for the embedder too.
            with feeding(lambda blocks: fill_faiss_index(
                    index, blocks, sample=_no_sample, n=n)) as feed:
                chunks = store.embed_passages(passages, embedder, chunk_size=chunk_size, restart=restart,
                                              show_progress=show_progress, feed=feed, distribute=distribute)
        else:
            chunks = store.embed_passages(passages, embedder, chunk_size=chunk_size, restart=restart,
                                          show_progress=show_progress, distribute=distribute)
            fill_faiss_index(index, chunks.blocks(), sample=chunks.sample, n=n, show_progress=show_progress)
        meta: dict[str, Any] = {"kind": "faiss", "index_type": index_type if factory is None else "factory",
                                "factory": description, "embedder": embedder.spec, "dim": embedder.dim}
        ivf = _ivf(index)
        if ivf is not None:
            meta.update(nlist=int(ivf.nlist), nprobe=nprobe or min(int(ivf.nlist), 16))
        if _hnsw(index) is not None:
            meta.update(hnsw_m=hnsw_m, ef_search=ef_search)
        if rerank:
            meta.update(rerank={"file": _VECTORS_FILE, "k_factor": REFINE_K_FACTOR})
        with store.new_generation() as gen:
            _faiss().write_index(index, str(gen / _INDEX_FILE))
            if rerank:
                write_disk_vectors(chunks.blocks(), gen / _VECTORS_FILE)
            IndexStore.write_meta(gen, meta, passages)
        store.clear_partial()
        return store.require_current()
