from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from s3_agents.retrievers import FaissRetriever, QdrantRetriever, load_retriever
from s3_agents.retrievers.qdrant import build_qdrant_collection, make_qdrant_client
from tests.s3_agents.retrievers.test_qdrant_edge import Recorder

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


class QdrantRecorder(Recorder):
    """Just enough of Qdrant's REST API for a build and a search, over real HTTP, recording every request: what
    qdrant-client sends in server mode is checked without a Qdrant server (none runs here) or a patched client.
    Replies as the snapshot-push test's :class:`Recorder`; keeps collections and aliases."""

    requests: list[dict[str, Any]] = []
    collections: dict[str, list[tuple[int, list[float], dict[str, Any]]]] = {}
    aliases: dict[str, str] = {}

    def _record(self) -> tuple[str, Any]:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        self.requests.append({"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                              "api-key": self.headers.get("api-key"), "body": body})
        return parts.path, body

    def do_GET(self) -> None:
        path, _ = self._record()
        if path == "/":
            self._reply({"title": "qdrant", "version": "1.15.0"})
        elif path == "/aliases" or path == "/collections/aliases":
            self._reply({"aliases": [{"alias_name": a, "collection_name": c} for a, c in self.aliases.items()]})
        elif path.endswith("/exists"):
            self._reply({"exists": path.split("/")[2] in self.collections})
        elif path == "/collections":
            self._reply({"collections": [{"name": name} for name in self.collections]})
        else:
            self.send_error(404)

    def do_PUT(self) -> None:
        path, body = self._record()
        name = path.split("/")[2]
        if path.endswith("/points"):
            batch = body["batch"]
            self.collections[name] += list(zip(batch["ids"], batch["vectors"], batch["payloads"]))
            self._reply({"operation_id": 1, "status": "completed"})
        else:
            self.collections[name] = []
            self._reply(True)

    def do_POST(self) -> None:
        path, body = self._record()
        if path == "/collections/aliases":
            for action in body["actions"]:
                if "delete_alias" in action:
                    del self.aliases[action["delete_alias"]["alias_name"]]
                else:
                    self.aliases[action["create_alias"]["alias_name"]] = action["create_alias"]["collection_name"]
            self._reply(True)
        elif path.endswith("/points/query/batch"):
            points = self.collections[self.aliases.get(path.split("/")[2], path.split("/")[2])]
            results = []
            for search in body["searches"]:
                query = search["query"]["nearest"]
                scored = sorted(((float(np.dot(query, v)), -i, p) for i, v, p in points), reverse=True)
                results.append({"points": [{"id": -i, "version": 0, "score": s, "payload": p}
                                           for s, i, p in scored[:search["limit"]]]})
            self._reply(results)
        else:
            self.send_error(404)

    def do_DELETE(self) -> None:
        path, _ = self._record()
        self.collections.pop(path.split("/")[2], None)
        self._reply(True)

@pytest.mark.filterwarnings("ignore::UserWarning")
def test_server_mode_build_and_search_over_http(demo_corpus, hashing) -> None:
    QdrantRecorder.requests, QdrantRecorder.collections, QdrantRecorder.aliases = [], {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), QdrantRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = make_qdrant_client(url=f"http://127.0.0.1:{server.server_address[1]}", api_key="k3y", timeout=10)
    try:
        first = build_qdrant_collection(demo_corpus.passages[:40], client, "wiki", hashing, batch_size=32,
                                        show_progress=False)
        second = build_qdrant_collection(demo_corpus.passages, client, "wiki", hashing, batch_size=256,
                                         show_progress=False)
        hits = QdrantRetriever(client, "wiki", hashing).search(QUESTIONS, 4)
    finally:
        client.close()
        server.shutdown()
    calls = [r for r in QdrantRecorder.requests if r["path"] != "/"]
    assert all(r["api-key"] == "k3y" for r in QdrantRecorder.requests)
    created = [r for r in calls if r["method"] == "PUT" and r["path"].count("/") == 2]
    assert [r["path"] for r in created] == [f"/collections/{first}", f"/collections/{second}"]
    assert created[0]["body"]["vectors"] == {"size": hashing.dim, "distance": "Dot"}
    upserts = [r for r in calls if r["path"].endswith("/points") and r["method"] == "PUT"]
    assert [len(r["body"]["batch"]["ids"]) for r in upserts] == [32, 8, 256, len(demo_corpus) - 256]
    assert all(r["query"]["wait"] == ["true"] for r in upserts)
    assert upserts[1]["body"]["batch"]["ids"][0] == 32
    assert upserts[0]["body"]["batch"]["payloads"][0] == {"doc_id": demo_corpus.passages[0].id,
                                                          "title": demo_corpus.passages[0].title,
                                                          "text": demo_corpus.passages[0].text}
    # The alias moves to the new collection in one request, then the old collection is dropped.
    switch = [r["body"]["actions"] for r in calls if r["path"] == "/collections/aliases" and r["method"] == "POST"]
    assert switch[-1] == [{"delete_alias": {"alias_name": "wiki"}},
                          {"create_alias": {"collection_name": second, "alias_name": "wiki"}}]
    assert [r["path"] for r in calls if r["method"] == "DELETE"] == [f"/collections/{first}"]
    (query,) = [r for r in calls if r["path"].endswith("/points/query/batch")]
    assert query["path"] == "/collections/wiki/points/query/batch"
    assert [s["limit"] for s in query["body"]["searches"]] == [4] * 3
    assert all(s["with_payload"] is True for s in query["body"]["searches"])
    np.testing.assert_allclose(query["body"]["searches"][0]["query"]["nearest"],
                               hashing.embed_queries(QUESTIONS[:1])[0], rtol=1e-6)
    # What came back is what a flat index over the same vectors ranks first.
    flat = FaissRetriever.from_passages(demo_corpus.passages, hashing).search(QUESTIONS, 4)
    assert [[p.id for p in h] for h in hits] == [[p.id for p in h] for h in flat]
