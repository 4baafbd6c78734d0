from __future__ import annotations

from pathlib import Path

import pytest

from s3_agents.retrievers import FaissRetriever, QdrantRetriever, load_retriever
from s3_agents.retrievers.qdrant import build_qdrant_collection, make_qdrant_client

QUESTIONS = ["Which river flows through Gritia?", "currency of Ketroul", "Who founded Seloun Guild?"]


def test_in_memory_matches_faiss_flat(demo_corpus, minilm) -> None:
    client = make_qdrant_client()
    build_qdrant_collection(demo_corpus.passages, client, "demo", minilm, show_progress=False)
    qdrant = QdrantRetriever(client, "demo", minilm)
    faiss = FaissRetriever.from_passages(demo_corpus.passages, minilm)
    for a, b in zip(qdrant.search(QUESTIONS, 5), faiss.search(QUESTIONS, 5)):
        assert [p.id for p in a] == [p.id for p in b]
        assert [p.title for p in a] == [p.title for p in b]
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)


def test_an_index_directory_of_qdrant_client_local_mode_still_opens(tmp_path: Path, demo_corpus, minilm) -> None:
    """Indexes built before Qdrant Edge (qdrant-client local mode, no "engine" in meta.json) keep loading."""
    from s3_agents.retrievers._store import IndexStore

    path = tmp_path / "qidx"
    client = make_qdrant_client(path=path / "qdrant-storage")
    build_qdrant_collection(demo_corpus.passages, client, "s3", minilm, show_progress=False)
    client.close()
    with IndexStore(path).new_generation() as gen:
        IndexStore.write_meta(gen, {"kind": "qdrant", "collection": "s3", "url": None, "embedder": "minilm",
                                    "dim": minilm.dim}, demo_corpus.passages)
    with load_retriever(path, embedder=minilm) as retriever:
        assert isinstance(retriever, QdrantRetriever)
        hits = retriever.search(QUESTIONS[:1], 3)[0]
        assert hits[0].title == "Gritia" and hits[0].score > hits[-1].score
    # The storage is released on close, so the index opens again (qdrant locks its folder).
    with load_retriever(path) as again:
        assert again.embedder.spec == "minilm"


def test_a_server_build_needs_the_server_url(tmp_path: Path, demo_corpus, hashing) -> None:
    from s3_agents.retrievers.qdrant import build_qdrant_index

    with pytest.raises(ValueError, match="give its url"):
        build_qdrant_index(demo_corpus.passages, tmp_path / "x", embedder=hashing, url="")


def test_rebuild_switches_the_alias_and_drops_leftovers(demo_corpus, hashing) -> None:
    client = make_qdrant_client()
    first = build_qdrant_collection(demo_corpus.passages[:20], client, "docs", hashing, show_progress=False)
    # A leftover of a build that was killed before it could clean up:
    from qdrant_client import models

    client.create_collection("docs--killed", vectors_config=models.VectorParams(size=256, distance=models.Distance.DOT))
    second = build_qdrant_collection(demo_corpus.passages, client, "docs", hashing, show_progress=False)
    names = {c.name for c in client.get_collections().collections}
    assert names == {second} and first != second
    assert client.count("docs").count == len(demo_corpus)


def test_failed_build_keeps_the_previous_collection(demo_corpus, hashing) -> None:
    client = make_qdrant_client()
    build_qdrant_collection(demo_corpus.passages[:20], client, "docs", hashing, show_progress=False)
    real_upsert = client.upsert
    calls = []

    def failing_upsert(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("server went away")
        return real_upsert(*args, **kwargs)

    client.upsert = failing_upsert
    with pytest.raises(ConnectionError):
        build_qdrant_collection(demo_corpus.passages, client, "docs", hashing, batch_size=50, show_progress=False)
    retriever = QdrantRetriever(client, "docs", hashing)
    assert client.count("docs").count == 20
    assert len(client.get_collections().collections) == 1
    first_twenty = {p.id for p in demo_corpus.passages[:20]}
    assert {p.id for p in retriever.search(["Ketroul"], 5)[0]} <= first_twenty


def test_refuses_to_shadow_a_foreign_collection(demo_corpus, hashing) -> None:
    from qdrant_client import models

    client = make_qdrant_client()
    client.create_collection("mine", vectors_config=models.VectorParams(size=256, distance=models.Distance.DOT))
    with pytest.raises(ValueError, match="already exists"):
        build_qdrant_collection(demo_corpus.passages[:5], client, "mine", hashing, show_progress=False)


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_server_mode_client_is_built_from_url(monkeypatch) -> None:
    """Server mode is the same QdrantRetriever over a URL client (no Qdrant server can run here)."""
    monkeypatch.setenv("QDRANT_API_KEY", "from-env")
    client = make_qdrant_client(url="http://127.0.0.1:6333")
    assert client._client.__class__.__name__ == "QdrantRemote"
    assert client._client._api_key == "from-env"
    with pytest.raises(ValueError, match="not both"):
        make_qdrant_client(url="http://127.0.0.1:6333", path="/tmp/x")
