from __future__ import annotations

from pathlib import Path

import pytest

from s3_agents.retrievers import BM25Retriever, build_index, load_retriever
from s3_agents.types import Passage

DOCS = [
    Passage("1", "Cats", "A cat is a small feline that likes to purr."),
    Passage("2", "Dogs", "A dog is a loyal animal that likes to play fetch."),
    Passage("3", "Fish", "Fish swim in water; some fish live in the sea."),
]


def test_ranks_by_term_overlap() -> None:
    retriever = BM25Retriever.from_passages(DOCS)
    hits = retriever.search(["which animal likes to purr", "fish in the sea", "dog fetch"], k=3)
    assert hits[0][0].id == "1"
    assert [p.id for p in hits[1]] == ["3"]        # only passages that share a term are returned
    assert hits[2][0].id == "2" and hits[2][0].score > 0


def test_query_without_known_words_returns_nothing() -> None:
    retriever = BM25Retriever.from_passages(DOCS)
    assert retriever.search(["zebra quantum", "the of and"], k=2) == [[], []]


def test_demo_questions_find_their_first_passage(demo_corpus, demo_questions) -> None:
    retriever = BM25Retriever.from_passages(demo_corpus.passages)
    hits = retriever.search([q.question for q in demo_questions], k=5)
    found = sum(q.metadata["supporting_ids"][0] in {p.id for p in h} for q, h in zip(demo_questions, hits))
    assert found / len(demo_questions) > 0.9


def test_save_and_load(tmp_path: Path, demo_corpus) -> None:
    build_index(demo_corpus.passages, tmp_path / "b", backend="bm25", show_progress=False)
    loaded = load_retriever(tmp_path / "b")
    fresh = BM25Retriever.from_passages(demo_corpus.passages)
    q = ["Into which sea does the Sesae River flow?"]
    assert [(p.id, round(p.score, 5)) for p in loaded.search(q, 5)[0]] == \
        [(p.id, round(p.score, 5)) for p in fresh.search(q, 5)[0]]


def test_wrong_kind_is_refused(tmp_path: Path, demo_corpus, hashing) -> None:
    build_index(demo_corpus.passages[:10], tmp_path / "f", backend="faiss", embedder=hashing, show_progress=False)
    with pytest.raises(ValueError, match="not a BM25 one"):
        BM25Retriever.load(tmp_path / "f")


def test_empty_corpus_is_refused() -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever.from_passages([])
