"""Naive-RAG baseline cache: answers and accuracies per (question, retriever, generator, k) in SQLite.

The Gain-Beyond-RAG reward needs, for each question, the generator's accuracy with naive top-k
retrieval. It is computed once and stored: the database runs in WAL mode and every answer is
committed as soon as it is scored, so an interrupted precompute (or a generator that goes down)
keeps all finished rows and the next run computes only what is missing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from s3_agents._tasks import gather_bounded, run_sync
from s3_agents.generator import Generator
from s3_agents.llm.base import ChatClient
from s3_agents.metrics import agen_acc, exact_match
from s3_agents.prompts import normalize_question
from s3_agents.qa import QAExample
from s3_agents.retrievers.base import Retriever

__all__ = ["RagEntry", "RagCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rag (
    question TEXT NOT NULL,
    retriever TEXT NOT NULL,
    generator TEXT NOT NULL,
    k INTEGER NOT NULL,
    answer TEXT NOT NULL,
    acc REAL NOT NULL,
    em REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (question, retriever, generator, k)
)"""


@dataclass(frozen=True, slots=True)
class RagEntry:
    """The naive-RAG baseline of one question."""

    answer: str
    acc: float
    em: float


class RagCache:
    """SQLite store of naive-RAG baselines.

    Args:
        path: Database file (created with its folder); ``":memory:"`` for a throwaway cache.
        retriever_id: Names the retriever (index path, URL...): part of every key.
        generator_id: Names the generator (model): part of every key.
        k: Documents of naive RAG (s3: 3): part of every key.

    Example:
        >>> cache = RagCache(":memory:", retriever_id="demo-faiss", generator_id="smollm2", k=3)
        >>> cache.put("Who founded Gritia?", RagEntry("Kaemia Tritrir", 1.0, 1.0))
        >>> cache.get("Who founded Gritia")          # questions are normalised (trailing ?)
        RagEntry(answer='Kaemia Tritrir', acc=1.0, em=1.0)
    """

    def __init__(self, path: str | Path, *, retriever_id: str, generator_id: str, k: int = 3) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.key = (retriever_id, generator_id, int(k))
        self.k = int(k)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    @staticmethod
    def retriever_key(location: str | Path | None) -> str:
        """The ``retriever_id`` of a retriever's location, the one rule every writer and reader of a cache uses.

        A server URL as it is; an index directory made absolute; no location: the built-in demo
        retriever (what the CLI searches when given no ``--index`` or ``--url``).

        Example:
            >>> RagCache.retriever_key("http://127.0.0.1:3000/retrieve"), RagCache.retriever_key(None)
            ('http://127.0.0.1:3000/retrieve', 'demo:minilm-faiss')
        """
        if location is None or str(location) == "":
            return "demo:minilm-faiss"
        text = str(location)
        return text if text.startswith(("http://", "https://")) else str(Path(text).resolve())

    def get(self, question: str) -> RagEntry | None:
        """The stored baseline of ``question``, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer, acc, em FROM rag WHERE question=? AND retriever=? AND generator=? AND k=?",
                (normalize_question(question), *self.key)).fetchone()
        return RagEntry(*row) if row else None

    def put(self, question: str, entry: RagEntry) -> None:
        """Store (or replace) the baseline of ``question``; committed at once."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO rag VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (normalize_question(question), *self.key, entry.answer, entry.acc, entry.em,
                              time.time()))
            self._db.commit()

    def missing(self, questions: Sequence[str]) -> list[str]:
        """The questions without a stored baseline, in order, without repeats."""
        seen: dict[str, None] = {}
        for q in questions:
            if normalize_question(q) not in seen and self.get(q) is None:
                seen[normalize_question(q)] = None
        return list(seen)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM rag WHERE retriever=? AND generator=? AND k=?",
                                    self.key).fetchone()[0]

    async def acompute(self, question: str, answers: Sequence[str], retriever: Retriever, generator: Generator,
                       judge: ChatClient | None = None) -> RagEntry:
        """Answer ``question`` from naive top-k retrieval, score it, store and return it."""
        q = normalize_question(question)
        passages = (await retriever.asearch([q], self.k))[0]
        answer = await generator.aanswer(q, passages)
        entry = RagEntry(answer, await agen_acc(answer, answers, judge), exact_match(answer, answers))
        await asyncio.to_thread(self.put, q, entry)
        return entry

    async def aprecompute(self, items: Sequence[QAExample], retriever: Retriever, generator: Generator, *,
                          judge: ChatClient | None = None, concurrency: int = 8,
                          show_progress: bool = True) -> dict[str, int]:
        """Fill the cache for ``items`` (from :func:`~s3_agents.qa.load_qa`), computing only what is missing.

        Returns:
            ``{"total", "cached", "computed"}`` counts.

        Raises:
            Whatever the retriever or generator raises once their retries are spent (for example
            :class:`~s3_agents.errors.LLMUnavailableError`); every row finished before stays stored.
        """
        todo = await asyncio.to_thread(lambda: [item for item in items if self.get(item.question) is None])
        unique = {normalize_question(item.question): item for item in todo}
        bar = tqdm(total=len(unique), desc="naive RAG baseline", unit="question", disable=not show_progress)

        async def one(item: QAExample) -> None:
            await self.acompute(item.question, item.answers, retriever, generator, judge)
            bar.update(1)

        try:
            await gather_bounded((one(item) for item in unique.values()), concurrency=concurrency)
        finally:
            bar.close()
        return {"total": len(items), "cached": len(items) - len(todo), "computed": len(unique)}

    def precompute(self, items: Sequence[QAExample], retriever: Retriever, generator: Generator,
                   **kwargs: Any) -> dict[str, int]:
        """Blocking :meth:`aprecompute`; works inside a running event loop too (a notebook cell)."""
        return run_sync(self.aprecompute(items, retriever, generator, **kwargs))

    def close(self) -> None:
        with self._lock:
            self._db.close()
