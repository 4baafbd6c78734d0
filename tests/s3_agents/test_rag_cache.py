from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from s3_agents import FaissRetriever, Generator, HashingEmbedder, RagCache, load_demo_corpus
from s3_agents.qa import QAExample
from s3_agents.rag_cache import RagEntry
from s3_agents.testing import ScriptedClient, on_event_loop


@pytest.fixture(scope="module")
def retriever():
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


def test_keys_separate_retrievers_generators_and_k(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    a = RagCache(path, retriever_id="r1", generator_id="g1", k=3)
    a.put("Q1", RagEntry("x", 1.0, 0.0))
    assert RagCache(path, retriever_id="r1", generator_id="g1", k=3).get("Q1?") == RagEntry("x", 1.0, 0.0)
    for other in (dict(retriever_id="r2", generator_id="g1", k=3), dict(retriever_id="r1", generator_id="g2", k=3),
                  dict(retriever_id="r1", generator_id="g1", k=5)):
        assert RagCache(path, **other).get("Q1") is None
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_precompute_only_computes_what_is_missing(tmp_path: Path, retriever, demo_questions) -> None:
    items = demo_questions[:6] + demo_questions[:2]          # repeats are computed once
    gen = ScriptedClient(lambda messages: "drilu")
    cache = RagCache(tmp_path / "c.sqlite", retriever_id="demo", generator_id="scripted", k=3)
    assert cache.precompute(items, retriever, Generator(gen), show_progress=False) == \
        {"total": 8, "cached": 0, "computed": 6}
    assert len(gen.calls) == 6 and len(cache) == 6
    # The prompt held the naive top-3 documents of the (normalised) question.
    assert gen.calls[0][0]["content"].count("Doc ") == 3
    again = cache.precompute(items, retriever, Generator(gen), show_progress=False)
    assert again == {"total": 8, "cached": 8, "computed": 0} and len(gen.calls) == 6


def test_a_failing_generator_loses_nothing(tmp_path: Path, retriever, demo_questions) -> None:
    answered = []

    def flaky(messages):
        if len(answered) == 3:
            raise ConnectionError("generator went down")
        answered.append(1)
        return "an answer"

    path = tmp_path / "c.sqlite"
    cache = RagCache(path, retriever_id="demo", generator_id="g", k=3)
    with pytest.raises(ConnectionError):
        cache.precompute(demo_questions[:8], retriever, Generator(ScriptedClient(flaky)), concurrency=1,
                         show_progress=False)
    reopened = RagCache(path, retriever_id="demo", generator_id="g", k=3)
    assert len(reopened) == 3
    assert len(reopened.missing([q.question for q in demo_questions[:8]])) == 5


def test_scores_use_gen_acc(tmp_path: Path, retriever) -> None:
    cache = RagCache(":memory:", retriever_id="demo", generator_id="g", k=3)
    items = [QAExample("What is the currency of Ketroul", ("mobroun",)),
             QAExample("Who founded Gritia?", ("Kaemia Tritrir",))]
    cache.precompute(items, retriever, Generator(ScriptedClient(lambda m: "It is the mobroun.")),
                     show_progress=False)
    assert cache.get(items[0].question) == RagEntry("It is the mobroun.", 1.0, 0.0)
    assert cache.get(items[1].question).acc == 0.0


def test_durability_is_what_the_doc_says(tmp_path: Path) -> None:
    """docs/searcher.md states what a power loss can lose; it must describe the pragmas the cache really sets."""
    cache = RagCache(tmp_path / "rag.sqlite", retriever_id="r", generator_id="g", k=3)
    journal = cache._db.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cache._db.execute("PRAGMA synchronous").fetchone()[0]]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "searcher.md").read_text(encoding="utf-8")
    section = doc.split("## Naive-RAG cache")[1]
    assert journal == "wal" and f"`synchronous={synchronous}`" in section.split("fsync per row")[0]
    assert "power loss" in section and "recomputes exactly the lost rows" in section


def test_precompute_reads_the_cache_off_the_event_loop(tmp_path: Path, retriever, demo_questions, monkeypatch) -> None:
    """The SQLite reads that find what is missing, and the writes, run in a worker thread."""
    cache = RagCache(tmp_path / "c.sqlite", retriever_id="demo", generator_id="scripted", k=3)
    on_loop: list[bool] = []

    def recorded(method):
        def call(*args, **kwargs):
            on_loop.append(on_event_loop())
            return method(*args, **kwargs)
        return call

    monkeypatch.setattr(cache, "get", recorded(cache.get))
    monkeypatch.setattr(cache, "put", recorded(cache.put))
    cache.precompute(demo_questions[:3], retriever, Generator(ScriptedClient(lambda m: "drilu")), show_progress=False)
    assert len(on_loop) == 6 and not any(on_loop)
