"""On-disk index layout with atomic publishing and resumable embedding.

An index directory holds complete *generations* and a pointer to the live one::

    my-index/
      CURRENT              name of the live generation, replaced atomically (os.replace)
      gen-<stamp>/         meta.json, passages.jsonl and the backend's files
      .partial/            embeddings of an unfinished build, one .npy per chunk
      .tmp-<stamp>/        a generation being written (removed on failure or next build)

A build writes a fresh ``.tmp-*`` folder, fsyncs it, renames it to ``gen-*`` and only then
points ``CURRENT`` at it. A build killed at any moment therefore leaves either the previous
index or none, never a half-written one that loads. Embeddings are saved chunk by chunk in
``.partial/`` under a fingerprint of corpus and embedder, so a new build of the same corpus
resumes where the killed one stopped.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from s3_agents.corpus import corpus_fingerprint, load_corpus
from s3_agents.embedders import Embedder
from s3_agents.errors import IndexFormatError, IndexNotFoundError
from s3_agents.locks import atomic_path, fsync_dir, locked, write_atomic
from s3_agents.types import Passage

__all__ = ["IndexStore", "EmbeddedChunks", "ChunkEmbedding", "PassageFile", "write_passage_file", "feeding",
           "META_FILE", "PASSAGES_FILE"]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
PASSAGES_FILE = "passages.jsonl"
OFFSETS_FILE = "passages.offsets.npy"
_CURRENT = "CURRENT"
_PARTIAL = ".partial"
FORMAT_VERSION = 1


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


_END = object()

ChunkEmbedding = Callable[[Embedder, list[tuple[int, list[str]]]], Iterator[tuple[int, np.ndarray]]]
"""Embeds numbered chunks of passage texts with (a copy of) an embedder elsewhere, yielding them in order."""


class _Aborted(Exception):
    """The producer of a :func:`feeding` stopped with an error; the consumer stops too."""


@contextmanager
def feeding(consume: Callable[[Iterator[np.ndarray]], Any], *,
            depth: int = 2) -> Iterator[Callable[[np.ndarray], None]]:
    """Run ``consume(blocks)`` in a background thread, fed the blocks the caller produces, so that writing an index
    overlaps computing the next embeddings.

    Yields ``feed(block)``. At most ``depth`` blocks wait in between (memory stays bounded). When the block
    exits, the consumer is waited for and its exception, if any, is raised here. When the block fails, the
    consumer is stopped.

    Example:
        >>> seen = []
        >>> with feeding(lambda blocks: seen.extend(len(b) for b in blocks)) as feed:
        ...     feed(np.zeros((3, 2))); feed(np.zeros((1, 2)))
        >>> seen
        [3, 1]
    """
    pipe: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def blocks() -> Iterator[np.ndarray]:
        while True:
            item = pipe.get()
            if item is _END:
                return
            if isinstance(item, _Aborted):
                raise item
            yield item

    def run() -> None:
        try:
            consume(blocks())
        except _Aborted:
            pass
        except BaseException as err:  # handed to the producer's thread
            failure.append(err)
            item = None
            while not (item is _END or isinstance(item, _Aborted)):  # unblock the producer until it stops
                item = pipe.get()

    worker = threading.Thread(target=run, name="index-writer", daemon=True)
    worker.start()

    def feed(block: np.ndarray) -> None:
        if failure:
            raise failure[0]
        pipe.put(block)

    try:
        yield feed
    except BaseException:
        pipe.put(_Aborted())
        worker.join()
        raise
    pipe.put(_END)
    worker.join()
    if failure:
        raise failure[0]


def _saved_chunk(path: Path, rows: int) -> np.ndarray | None:
    """The vectors of a chunk saved by an earlier build (memory-mapped), or ``None`` if it is missing or damaged."""
    try:
        block = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return block if block.ndim == 2 and block.shape[0] == rows else None


class EmbeddedChunks:
    """The vectors of a build as the ``.npy`` chunks it saved, read back one chunk at a time (memory-mapped),
    so a build never needs all of a large corpus's vectors in memory at once.

    Args:
        paths: The chunk files, in corpus order.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._rows = [int(np.load(path, mmap_mode="r").shape[0]) for path in self.paths]
        self.dim = int(np.load(self.paths[0], mmap_mode="r").shape[1]) if self.paths else 0

    def __len__(self) -> int:
        return sum(self._rows)

    def blocks(self) -> Iterator[np.ndarray]:
        """Each chunk's ``(rows, dim)`` float32 vectors, in order."""
        for path in self.paths:
            yield np.ascontiguousarray(np.load(path, mmap_mode="r"), dtype=np.float32)

    def sample(self, size: int, *, seed: int = 0) -> np.ndarray:
        """``size`` rows drawn without replacement (all of them, in order, when there are no more)."""
        n = len(self)
        if size >= n:
            return self.to_array()
        wanted = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        parts, start = [], 0
        for path, rows in zip(self.paths, self._rows):
            mine = wanted[(wanted >= start) & (wanted < start + rows)] - start
            if len(mine):
                parts.append(np.asarray(np.load(path, mmap_mode="r")[mine], dtype=np.float32))
            start += rows
        return np.ascontiguousarray(np.concatenate(parts))

    def to_array(self) -> np.ndarray:
        """All vectors in one ``(n, dim)`` array (for small corpora)."""
        if not self.paths:
            return np.zeros((0, 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(list(self.blocks())))


def write_passage_file(passages: Iterable[Passage], path: Path) -> int:
    """Write passages as ``{id, title, text}`` JSONL at ``path`` and the byte offset of every line beside it
    (``passages.offsets.npy``), so :class:`PassageFile` can read any one of them without loading the rest.

    Returns:
        The number of passages written.
    """
    offsets = [0]
    with open(path, "wb") as handle:
        for passage in passages:
            handle.write(json.dumps(passage.to_record(), ensure_ascii=False).encode("utf-8") + b"\n")
            offsets.append(handle.tell())
    np.save(path.with_name(OFFSETS_FILE), np.asarray(offsets, dtype=np.uint64))
    return len(offsets) - 1


class PassageFile(Sequence[Passage]):
    """The passages of an index generation, read from disk one at a time by their byte offsets.

    Memory is 8 bytes per passage (the offsets) plus the pages the OS caches, so an index of tens of
    millions of passages opens at once in any process. Reads are thread-safe (a read-only memory map).

    Args:
        path: A ``passages.jsonl`` written by :func:`write_passage_file`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offsets = np.load(self.path.with_name(OFFSETS_FILE), mmap_mode="r")
        with open(self.path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if self._offsets[-1] else b""
        if len(self._map) != int(self._offsets[-1]):
            raise IndexFormatError(f"{self.path} does not match its offsets file (rewrite the index)")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> Passage:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]  # type: ignore[return-value]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"passage {i} out of range ({len(self)} passages)")
        record = json.loads(self._map[int(self._offsets[i]):int(self._offsets[i + 1])])
        return Passage(record["id"], record["title"], record["text"])


class IndexStore:
    """Generations of one index directory.

    Args:
        root: The index directory (created on the first build).

    Example:
        >>> store = IndexStore("/tmp/demo-index")               # doctest: +SKIP
        >>> with store.new_generation() as gen:                  # doctest: +SKIP
        ...     (gen / "index.bin").write_bytes(data)            # published on success only
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------------
    def current(self) -> Path | None:
        """The live generation, or ``None`` when no build has completed."""
        pointer = self.root / _CURRENT
        if not pointer.is_file():
            return None
        gen = self.root / pointer.read_text(encoding="utf-8").strip()
        return gen if (gen / META_FILE).is_file() else None

    def require_current(self) -> Path:
        """The live generation; raises :class:`IndexNotFoundError` with a hint when there is none."""
        gen = self.current()
        if gen is None:
            hint = (" (an interrupted build left partial work there; run `s3 index build` again "
                    "to resume it)" if (self.root / _PARTIAL).exists() else "")
            raise IndexNotFoundError(
                f"no complete index at {self.root}{hint}; build one with "
                "`s3 index build CORPUS.jsonl " + str(self.root) + "`"
            )
        return gen

    def read_meta(self) -> dict[str, Any]:
        """``meta.json`` of the live generation."""
        return json.loads((self.require_current() / META_FILE).read_text(encoding="utf-8"))

    @staticmethod
    def read_passages(gen: Path) -> Sequence[Passage]:
        """The passages stored with a generation, in index order: a :class:`PassageFile` read on demand (a list
        for generations written before offsets were recorded)."""
        if (gen / OFFSETS_FILE).is_file():
            return PassageFile(gen / PASSAGES_FILE)
        return load_corpus(gen / PASSAGES_FILE).passages

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def build_lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the index directory for one build (released even on SIGKILL).

        Raises:
            RuntimeError: If another build of the same directory is running.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".lock", f"another build is writing {self.root}", "wait for it or stop it first"):
            yield

    @contextmanager
    def new_generation(self) -> Iterator[Path]:
        """Yield an empty folder; publish it as the live generation if the block succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        tmp = self.root / f".tmp-{stamp}"
        tmp.mkdir()
        try:
            yield tmp
            _fsync_tree(tmp)
            gen = self.root / f"gen-{stamp}"
            os.rename(tmp, gen)
            fsync_dir(self.root)
            write_atomic(self.root / _CURRENT, gen.name.encode("utf-8"))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._remove_stale(keep=gen.name)

    def _remove_stale(self, keep: str) -> None:
        for child in self.root.iterdir():
            if child.name == keep:
                continue
            if child.name.startswith(("gen-", ".tmp-")) and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)

    @staticmethod
    def write_meta(gen: Path, meta: dict[str, Any], passages: Sequence[Passage]) -> None:
        """Write ``meta.json`` and ``passages.jsonl`` into a generation being built."""
        write_passage_file(passages, gen / PASSAGES_FILE)
        full = {"format_version": FORMAT_VERSION, "count": len(passages),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
        (gen / META_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")

    # -- resumable embedding ---------------------------------------------------------------
    def embed_resumable(
        self,
        texts: Sequence[str],
        embed: Callable[[Sequence[str]], np.ndarray],
        *,
        fingerprint: str,
        chunk_size: int = 2048,
        restart: bool = False,
        show_progress: bool = True,
        on_chunk: Callable[[int, int], None] | None = None,
        feed: Callable[[np.ndarray], None] | None = None,
        embed_chunks: Callable[[list[tuple[int, list[str]]]], Iterator[tuple[int, np.ndarray]]] | None = None,
    ) -> tuple[EmbeddedChunks, int]:
        """Embed ``texts`` in chunks saved under ``.partial/`` so a killed build can resume.

        Args:
            texts: Passage texts in index order.
            embed: Function from a list of texts to a ``(n, dim)`` float32 array.
            fingerprint: Identifies corpus + embedder + chunk size; chunks saved under another
                fingerprint are discarded.
            chunk_size: Texts per saved chunk.
            restart: Discard any saved chunks first.
            show_progress: Show a progress bar over chunks.
            on_chunk: Called as ``on_chunk(done, total)`` after each chunk is saved.
            feed: Given each chunk's vectors in order, saved or reused (see :func:`feeding`).
            embed_chunks: Embeds all the chunks that are not saved yet, given as ``(number, texts)``, and yields
                ``(number, vectors)`` in the same order (e.g. on a Ray cluster); by default ``embed`` runs on
                each chunk here, one after the other.

        Returns:
            The saved chunks (read back one at a time) and how many were reused from an earlier run.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        partial = self.root / _PARTIAL
        manifest = partial / "manifest.json"
        if restart and partial.exists():
            shutil.rmtree(partial)
        if partial.exists():
            try:
                previous = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, ValueError):
                previous = None
            if previous != fingerprint:
                logger.info("discarding partial embeddings of a different corpus or embedder")
                shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        write_atomic(manifest, json.dumps({"fingerprint": fingerprint}).encode("utf-8"))

        n_chunks = (len(texts) + chunk_size - 1) // chunk_size
        spans = [(i, i * chunk_size, min(len(texts), (i + 1) * chunk_size)) for i in range(n_chunks)]
        saved = {i for i, lo, hi in spans if _saved_chunk(partial / f"chunk-{i:06d}.npy", hi - lo) is not None}
        missing = [(i, list(texts[lo:hi])) for i, lo, hi in spans if i not in saved]
        computed = (embed_chunks(missing) if embed_chunks is not None and missing
                    else ((i, embed(chunk)) for i, chunk in missing))
        paths: list[Path] = []
        reused = len(saved)
        bar = tqdm(total=len(texts), desc="embedding", unit="passage", disable=not show_progress)
        for i, lo, hi in spans:
            path = partial / f"chunk-{i:06d}.npy"
            block = _saved_chunk(path, hi - lo) if i in saved else None
            if block is None:
                done, block = next(computed)
                if done != i:
                    raise RuntimeError(f"embedding returned chunk {done} where chunk {i} was due")
                block = np.ascontiguousarray(block, dtype=np.float32)
                if block.shape[0] != hi - lo:
                    raise RuntimeError(f"embedding returned {block.shape[0]} vectors for chunk {i} of {hi - lo} texts")
                with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, block)
            if feed is not None:
                feed(np.asarray(block, dtype=np.float32))
            del block
            paths.append(path)
            bar.update(hi - lo)
            if on_chunk is not None:
                on_chunk(i + 1, n_chunks)
        bar.close()
        if reused:
            logger.info("resumed %d of %d embedding chunks from an interrupted build", reused, n_chunks)
        return EmbeddedChunks(paths), reused

    def embed_passages(
        self,
        passages: Sequence[Passage],
        embedder: Embedder,
        *,
        chunk_size: int = 2048,
        restart: bool = False,
        show_progress: bool = True,
        feed: Callable[[np.ndarray], None] | None = None,
        distribute: ChunkEmbedding | None = None,
    ) -> EmbeddedChunks:
        """Embed passages (their ``"Title"\\ntext`` form) resumably, keyed by corpus and embedder; ``feed`` gets
        each chunk's vectors as soon as they exist, ``distribute`` embeds the chunks elsewhere (see
        :meth:`embed_resumable`)."""
        fingerprint = f"{corpus_fingerprint(passages)}:{embedder.spec}:{chunk_size}"
        vectors, _ = self.embed_resumable(
            [p.contents for p in passages], embedder.embed_passages, fingerprint=fingerprint,
            chunk_size=chunk_size, restart=restart, show_progress=show_progress, feed=feed,
            embed_chunks=None if distribute is None else (lambda chunks: distribute(embedder, chunks)),
        )
        return vectors

    def clear_partial(self) -> None:
        """Remove the saved embeddings of a finished build."""
        shutil.rmtree(self.root / _PARTIAL, ignore_errors=True)
