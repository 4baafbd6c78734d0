"""Sparse BM25 retrieval through the ``bm25s`` library."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s3_agents.errors import DataError, IndexFormatError
from s3_agents.retrievers._store import IndexStore, PassageFile
from s3_agents.retrievers.base import Retriever
from s3_agents.types import Passage

__all__ = ["BM25Retriever", "build_bm25_index"]

_MODEL_DIR = "bm25"


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as err:  # pragma: no cover - bm25s is a core dependency
        raise ImportError("BM25 needs the bm25s package: pip install bm25s") from err
    return bm25s


class BM25Retriever(Retriever):
    """BM25 (Lucene variant by default) over passage titles and texts.

    Args:
        model: An indexed ``bm25s.BM25``; document ``i`` is ``passages[i]``.
        passages: The passages, in index order.
        stopwords: Stopword list name used at indexing time (``"en"``) or ``None``.

    Example:
        >>> from s3_agents.corpus import load_demo_corpus
        >>> r = BM25Retriever.from_passages(load_demo_corpus().passages)
        >>> r.search(["currency of Ketroul"], k=1)[0][0].title
        'Ketroul'
    """

    def __init__(self, model: Any, passages: Sequence[Passage], *, stopwords: str | None = "en") -> None:
        self.model = model
        self.passages = passages if isinstance(passages, PassageFile) else list(passages)
        self.stopwords = stopwords

    @classmethod
    def from_passages(
        cls,
        passages: Sequence[Passage],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
        show_progress: bool = False,
    ) -> BM25Retriever:
        """Tokenise and index ``passages`` in memory."""
        if not passages:
            raise DataError("cannot build a BM25 index over an empty corpus")
        bm25s = _bm25s()
        tokens = bm25s.tokenize([p.contents for p in passages], stopwords=stopwords,
                                show_progress=show_progress)
        model = bm25s.BM25(k1=k1, b=b, method=method)
        model.index(tokens, show_progress=show_progress)
        return cls(model, passages, stopwords=stopwords)

    @classmethod
    def load(cls, path: str | Path) -> BM25Retriever:
        """Open an index written by :func:`build_bm25_index` (or ``s3 index build --backend bm25``)."""
        store = IndexStore(path)
        gen = store.require_current()
        meta = store.read_meta()
        if meta.get("kind") != "bm25":
            raise IndexFormatError(f"{path} holds a {meta.get('kind')!r} index, not a BM25 one")
        model = _bm25s().BM25.load(str(gen / _MODEL_DIR))
        return cls(model, IndexStore.read_passages(gen), stopwords=meta.get("stopwords"))

    def __len__(self) -> int:
        return len(self.passages)

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        bm25s = _bm25s()
        k = min(k, len(self.passages))
        # Token strings (not ids) so that query words are looked up in the index vocabulary.
        query_tokens = bm25s.tokenize(queries, stopwords=self.stopwords, return_ids=False,
                                      show_progress=False)
        out: list[list[Passage]] = []
        for tokens in query_tokens:
            known = [t for t in tokens if t in self.model.vocab_dict]
            if not known:
                out.append([])
                continue
            scores = self.model.get_scores(known)
            top = np.argsort(-scores, kind="stable")[:k]
            out.append([self.passages[i].with_score(scores[i]) for i in top.tolist() if scores[i] > 0])
        return out


def build_bm25_index(
    passages: Sequence[Passage],
    path: str | Path,
    *,
    k1: float = 1.5,
    b: float = 0.75,
    stopwords: str | None = "en",
    show_progress: bool = True,
) -> Path:
    """Index ``passages`` with BM25 and publish the index directory atomically.

    Returns:
        The directory of the published generation.
    """
    store = IndexStore(path)
    with store.build_lock():
        retriever = BM25Retriever.from_passages(passages, k1=k1, b=b, stopwords=stopwords,
                                                show_progress=show_progress)
        with store.new_generation() as gen:
            retriever.model.save(str(gen / _MODEL_DIR))
            IndexStore.write_meta(gen, {"kind": "bm25", "k1": k1, "b": b, "stopwords": stopwords}, passages)
        return store.require_current()
