from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s3_agents.errors import IndexNotFoundError
from s3_agents.retrievers import FaissRetriever, build_index, load_retriever
from s3_agents.retrievers._store import IndexStore
from s3_agents.retrievers.faiss import build_faiss_index, make_faiss_index


def brute_force(query_vecs: np.ndarray, passage_vecs: np.ndarray, k: int) -> list[list[int]]:
    scores = query_vecs @ passage_vecs.T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


@pytest.fixture(scope="module")
def demo_vectors(demo_corpus, minilm) -> np.ndarray:
    """The demo corpus embedded once by MiniLM, for the tests that compare indexes over the same vectors."""
    return minilm.embed_passages([p.contents for p in demo_corpus])


def test_flat_matches_numpy_brute_force(demo_corpus, minilm, demo_vectors) -> None:
    retriever = FaissRetriever.from_passages(demo_corpus.passages, minilm)
    questions = ["Which river flows through Gritia?", "currency of Ketroul", "Who painted Vona at Dusk?"]
    hits = retriever.search(questions, k=5)
    expected = brute_force(minilm.embed_queries(questions), demo_vectors, 5)
    for got, want in zip(hits, expected):
        assert [p.id for p in got] == [demo_corpus.passages[i].id for i in want]
        assert all(a.score >= b.score for a, b in zip(got, got[1:]))
    assert hits[0][0].title == "Gritia"


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_agree_with_flat(demo_corpus, demo_questions, minilm, demo_vectors, index_type) -> None:
    flat = FaissRetriever(make_faiss_index(demo_vectors, "flat"), demo_corpus.passages, minilm)
    approx = FaissRetriever(make_faiss_index(demo_vectors, index_type), demo_corpus.passages, minilm,
                            nprobe=4, ef_search=64)
    assert approx.index_type == index_type
    queries = [q.question for q in demo_questions]
    qv = minilm.embed_queries(queries)
    exact = flat.search_vectors(qv, 10)
    got = approx.search_vectors(qv, 10)
    recall = np.mean([len({p.id for p in a} & {p.id for p in b}) / 10 for a, b in zip(exact, got)])
    assert recall >= 0.8


def test_k_larger_than_corpus_and_empty_batch(demo_corpus, hashing) -> None:
    small = demo_corpus.passages[:4]
    retriever = FaissRetriever.from_passages(small, hashing)
    assert len(retriever.search(["anything"], k=50)[0]) == 4
    assert retriever.search([], k=3) == []


@pytest.mark.parametrize(("queries", "k", "error"), [
    ("a single string", 3, TypeError),
    (["ok", 5], 3, TypeError),
    (["ok"], 0, ValueError),
    (["ok"], 2.5, ValueError),
])
def test_bad_arguments(demo_corpus, hashing, queries, k, error) -> None:
    retriever = FaissRetriever.from_passages(demo_corpus.passages[:10], hashing)
    with pytest.raises(error):
        retriever.search(queries, k)


def test_mismatched_embedder_is_refused(demo_corpus, hashing) -> None:
    retriever = FaissRetriever.from_passages(demo_corpus.passages[:10], hashing)
    from s3_agents.embedders import HashingEmbedder

    with pytest.raises(ValueError, match="embedder width"):
        FaissRetriever(retriever.index, retriever.passages, HashingEmbedder(64))
    with pytest.raises(ValueError, match="10 vectors but 9 passages"):
        FaissRetriever(retriever.index, retriever.passages[:9], hashing)


def test_gpu_required_without_gpu_is_a_clear_error(demo_corpus, hashing) -> None:
    from s3_agents.retrievers.faiss import gpu_count

    if gpu_count():
        pytest.skip("a GPU is visible")
    with pytest.raises(RuntimeError, match="faiss-gpu"):
        FaissRetriever.from_passages(demo_corpus.passages[:10], hashing, gpu=True)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_build_save_load_round_trip(tmp_path: Path, demo_corpus, minilm, demo_vectors, index_type) -> None:
    path = tmp_path / "idx"
    gen = build_faiss_index(demo_corpus.passages, path, embedder=minilm, index_type=index_type,
                            chunk_size=100, show_progress=False)
    meta = json.loads((gen / "meta.json").read_text())
    assert meta["kind"] == "faiss" and meta["index_type"] == index_type
    assert meta["embedder"] == "minilm" and meta["count"] == len(demo_corpus)
    assert not (path / ".partial").exists()
    loaded = load_retriever(path, embedder=minilm)
    assert isinstance(loaded, FaissRetriever) and loaded.index_type == index_type
    fresh = FaissRetriever(make_faiss_index(demo_vectors, "flat"), demo_corpus.passages, minilm)
    q = ["In which country does Reisur & Sons have its headquarters?"]
    assert [p.id for p in loaded.search(q, 3)[0]][:1] == [p.id for p in fresh.search(q, 3)[0]][:1]


def test_load_uses_the_recorded_embedder(tmp_path: Path, demo_corpus) -> None:
    build_index(demo_corpus.passages, tmp_path / "h", backend="faiss",
                embedder=__import__("s3_agents").HashingEmbedder(128), show_progress=False)
    loaded = load_retriever(tmp_path / "h")
    assert loaded.embedder.spec == "hashing:128"


def test_loading_nothing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="s3 index build"):
        FaissRetriever.load(tmp_path / "never-built")


def test_rebuild_replaces_the_live_generation(tmp_path: Path, demo_corpus, hashing) -> None:
    path = tmp_path / "idx"
    first = build_faiss_index(demo_corpus.passages[:50], path, embedder=hashing, show_progress=False)
    second = build_faiss_index(demo_corpus.passages, path, embedder=hashing, show_progress=False)
    assert first != second and not first.exists()
    assert len(FaissRetriever.load(path)) == len(demo_corpus)
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("gen-")) == [second.name]


def test_failed_build_resumes_from_saved_chunks(tmp_path: Path, demo_corpus, hashing) -> None:
    """A build that dies after some chunks leaves no index, and the next run reuses the chunks."""
    path = tmp_path / "idx"
    calls: list[int] = []
    die_at = [3]

    class Dies(Exception):
        pass

    def dying_embed(texts):
        calls.append(len(texts))
        if len(calls) == die_at[0]:
            raise Dies
        return hashing.embed_passages(texts)

    texts = [p.contents for p in demo_corpus]
    store = IndexStore(path)
    with pytest.raises(Dies):
        store.embed_resumable(texts, dying_embed, fingerprint="fp", chunk_size=50, show_progress=False)
    assert store.current() is None
    assert len(list((path / ".partial").glob("chunk-*.npy"))) == 2

    calls.clear()
    die_at[0] = -1
    vectors, reused = store.embed_resumable(texts, dying_embed, fingerprint="fp", chunk_size=50,
                                            show_progress=False)
    assert reused == 2 and calls[0] == 50 and len(calls) == 4  # 6 chunks, 2 reused
    np.testing.assert_array_equal(vectors.to_array(), hashing.embed_passages(texts))

    # Another fingerprint (other corpus or embedder) never reuses those chunks; restart discards them.
    calls.clear()
    _, reused = store.embed_resumable(texts[:100], hashing.embed_passages, fingerprint="other",
                                      chunk_size=50, show_progress=False)
    assert reused == 0
    _, reused = store.embed_resumable(texts[:100], hashing.embed_passages, fingerprint="other",
                                      chunk_size=50, restart=True, show_progress=False)
    assert reused == 0


def test_failure_inside_a_generation_publishes_nothing(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "idx")
    with pytest.raises(RuntimeError):
        with store.new_generation() as gen:
            (gen / "meta.json").write_text("{}")
            raise RuntimeError("disk full")
    assert store.current() is None
    assert not any(p.name.startswith((".tmp-", "gen-")) for p in (tmp_path / "idx").iterdir())


def test_concurrent_builds_of_one_directory_are_refused(tmp_path: Path, demo_corpus, hashing) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.build_lock():
        with pytest.raises(RuntimeError, match="another build is writing"):
            build_faiss_index(demo_corpus.passages[:10], tmp_path / "idx", embedder=hashing, show_progress=False)
    # Released: the same build now succeeds.
    build_faiss_index(demo_corpus.passages[:10], tmp_path / "idx", embedder=hashing, show_progress=False)
    assert len(FaissRetriever.load(tmp_path / "idx")) == 10


def test_async_search_matches_sync(demo_corpus, hashing) -> None:
    import asyncio

    retriever = FaissRetriever.from_passages(demo_corpus.passages, hashing)
    questions = ["currency of Ketroul", "river through Gritia"]

    async def both():
        return await asyncio.gather(retriever.asearch(questions[:1], 3), retriever.asearch(questions[1:], 3))

    first, second = asyncio.run(both())
    assert first + second == retriever.search(questions, 3)


def test_load_retriever_accepts_a_url() -> None:
    from s3_agents.retrievers import RemoteRetriever

    retriever = load_retriever("http://127.0.0.1:3000", timeout=5)
    assert isinstance(retriever, RemoteRetriever) and retriever.url == "http://127.0.0.1:3000/retrieve"


def test_loaded_passages_are_read_from_disk_by_offset(tmp_path: Path, demo_corpus, hashing) -> None:
    from s3_agents.retrievers._store import OFFSETS_FILE, PassageFile
    from s3_agents.types import Passage

    passages = [*demo_corpus.passages[:30], Passage("ü-1", "Çirö «quoted»", "multi-byte text: 東京 ☃")]
    gen = build_faiss_index(passages, tmp_path / "idx", embedder=hashing, show_progress=False)
    retriever = FaissRetriever.load(tmp_path / "idx", embedder=hashing)
    stored = retriever.passages
    assert isinstance(stored, PassageFile) and len(stored) == len(passages)
    assert list(stored) == passages and stored[-1] == passages[-1] and stored[3:5] == passages[3:5]
    with pytest.raises(IndexError):
        stored[len(passages)]
    assert retriever.search([passages[-1].contents], 1)[0][0].title == "Çirö «quoted»"
    # A generation written before offsets were recorded still loads (into a list).
    (gen / OFFSETS_FILE).unlink()
    assert FaissRetriever.load(tmp_path / "idx", embedder=hashing).passages == passages
