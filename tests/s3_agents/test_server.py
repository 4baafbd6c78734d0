"""The retrieval server: its app under a real uvicorn in a thread, called over HTTP (`s3 serve` itself runs as a
subprocess in test_cli.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from s3_agents import HashingEmbedder, load_demo_corpus
from s3_agents.config import ServerLimits
from s3_agents.errors import RetrieverError, RetrieverUnavailableError
from s3_agents.retrievers import FaissRetriever, RemoteRetriever, build_index, load_retriever
from s3_agents.server import create_app
from tests.conftest import ThreadedServer, free_port, run_main

pytestmark = pytest.mark.slow

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm) -> Path:
    out = tmp_path_factory.mktemp("srv") / "idx"
    build_index(load_demo_corpus().passages, out, embedder=minilm)
    return out


@pytest.fixture(scope="module")
def server(index_dir: Path):
    """What ``s3 serve --index idx --api-key KEY --max-queries 8 --max-topk 10 --max-body-bytes 4000
    --default-topk 2`` serves."""
    limits = ServerLimits(max_queries=8, max_topk=10, max_body_bytes=4000, default_topk=2)
    running = ThreadedServer(create_app(load_retriever(index_dir), api_key=KEY, limits=limits,
                                        info={"index": index_dir.name}), limits)
    yield running
    running.stop()


def post(server: ThreadedServer, body, headers=AUTH, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/retrieve", json=body, headers=headers, timeout=30, **kwargs)


def test_reply_has_the_exact_s3_shape_with_scores(server, demo_corpus, minilm) -> None:
    questions = ["Which river flows through Gritia?", "currency of Ketroul"]
    reply = post(server, {"queries": questions, "topk": 3, "return_scores": True})
    assert reply.status_code == 200
    payload = reply.json()
    assert list(payload) == ["result"] and len(payload["result"]) == 2
    for hits in payload["result"]:
        assert len(hits) == 3
        for hit in hits:
            assert set(hit) == {"document", "score"}
            assert set(hit["document"]) == {"id", "contents"}
            assert hit["document"]["contents"].startswith('"') and "\n" in hit["document"]["contents"]
            assert isinstance(hit["score"], float)
    # Same ids and order as the library retriever over the same corpus and embedder.
    local = FaissRetriever.from_passages(demo_corpus.passages, minilm).search(questions, 3)
    assert [[h["document"]["id"] for h in hits] for hits in payload["result"]] == \
        [[p.id for p in hits] for hits in local]


def test_reply_without_scores_is_a_list_of_documents(server) -> None:
    payload = post(server, {"queries": ["Gritia"], "topk": 2, "return_scores": False}).json()
    assert all(set(doc) == {"id", "contents"} for doc in payload["result"][0])
    default_k = post(server, {"queries": ["Gritia"]}).json()
    assert len(default_k["result"][0]) == 2  # --default-topk


def test_empty_query_list(server) -> None:
    assert post(server, {"queries": [], "topk": 3}).json() == {"result": []}


def test_health_is_open(server, index_dir) -> None:
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["passages"] == 270 and health["retriever"] == "FaissRetriever"
    assert health["index"] == index_dir.name and str(index_dir.parent) not in json.dumps(health)   # no path


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_description_is_off_by_default(server, path) -> None:
    assert httpx.get(server.url + path).status_code == 404


def test_api_description_when_asked_and_key_rules() -> None:
    from fastapi.testclient import TestClient

    from s3_agents.server import create_app

    retriever = FaissRetriever.from_passages(list(load_demo_corpus().passages)[:5], HashingEmbedder(dim=32))
    assert TestClient(create_app(retriever, docs=True), base_url="http://127.0.0.1").get(
        "/openapi.json").status_code == 200
    for bad in ("clé-ключ", "", "tab\tkey"):
        with pytest.raises(ValueError, match="printable ASCII"):
            create_app(retriever, api_key=bad)
    for bad in (" s3cret", "s3cret ", "s3cret\t"):      # HTTP strips a header value's outer whitespace
        with pytest.raises(ValueError, match="whitespace|printable ASCII"):
            create_app(retriever, api_key=bad)
    with pytest.raises(ValueError, match="whitespace"):
        create_app(retriever, api_key="s3cret ")


def test_serve_refuses_a_key_no_client_could_send(capsys, monkeypatch) -> None:
    monkeypatch.setattr("s3_agents.server.serve", lambda *a, **k: pytest.fail("started with a bad key"))
    code, out, err = run_main(capsys, "serve", "--embedder", "hashing", "--api-key", "clé-ключ")
    assert code == 2 and "printable ASCII" in out + err


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}])
def test_api_key_is_required(server, headers) -> None:
    reply = post(server, {"queries": ["x"]}, headers=headers)
    assert reply.status_code == 401 and "API key" in reply.json()["detail"]


def test_x_api_key_header_is_accepted(server) -> None:
    assert post(server, {"queries": ["x"], "topk": 1}, headers={"X-API-Key": KEY}).status_code == 200


def test_the_key_guards_every_path_but_health_and_docs() -> None:
    from s3_agents.server import create_app

    retriever = FaissRetriever.from_passages(list(load_demo_corpus().passages)[:5], HashingEmbedder(dim=32))

    async def replies() -> dict[str, int]:
        app = create_app(retriever, api_key=KEY, docs=True)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            no_key = await client.post("/retrieve", json={"queries": ["x"], "topk": 1})
            assert no_key.headers["www-authenticate"] == "Bearer" and "API key" in no_key.json()["detail"]
            return {"retrieve": no_key.status_code,
                    "retrieve with key": (await client.post("/retrieve", json={"queries": ["x"], "topk": 1},
                                                            headers=AUTH)).status_code,
                    "health": (await client.get("/health")).status_code,
                    "openapi": (await client.get("/openapi.json")).status_code,
                    "unknown": (await client.get("/admin")).status_code}

    assert asyncio.run(replies()) == {"retrieve": 401, "retrieve with key": 200, "health": 200, "openapi": 200,
                                      "unknown": 401}


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"queries": ["q"] * 9, "topk": 1}, 413, "limit is 8"),
    ({"queries": ["q"], "topk": 11}, 422, "between 1 and 10"),
    ({"queries": ["q"], "topk": 0}, 422, "between 1 and 10"),
    ({"queries": "q"}, 422, "queries"),
    ({"queries": [1, 2]}, 422, "queries.0"),
    ({"queries": ["q"], "topk": "3"}, 422, "topk"),
    ({"topk": 3}, 422, "queries"),
    ([1, 2, 3], 422, "bad request body"),
])
def test_limits_and_malformed_bodies_get_a_clear_4xx(server, body, status, words) -> None:
    reply = post(server, body)
    assert reply.status_code == status
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and words in detail


def test_body_size_limit(server) -> None:
    reply = post(server, {"queries": ["x" * 5000], "topk": 1})
    assert reply.status_code == 413 and "4000 bytes" in reply.json()["detail"]
    # A streamed body without Content-Length is cut off too.
    def chunks():
        yield b'{"queries": ["' + b"y" * 3000
        yield b"y" * 3000 + b'"]}'

    reply = httpx.post(server.url + "/retrieve", content=chunks(), headers=AUTH)
    assert reply.status_code == 413


def test_invalid_json_and_form_encoding(server) -> None:
    bad = httpx.post(server.url + "/retrieve", content=b"{not json", headers=AUTH)
    assert bad.status_code == 422 and "Invalid JSON" in bad.json()["detail"]
    # curl -d sends application/x-www-form-urlencoded; the JSON body is still read.
    curl_like = httpx.post(server.url + "/retrieve", content=b'{"queries": ["Gritia"], "topk": 1}',
                           headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert curl_like.status_code == 200 and len(curl_like.json()["result"][0]) == 1


def test_server_survives_bad_requests(server) -> None:
    for body, field in (({"queries": "broken"}, "queries"), ({"queries": [None]}, "queries.0"),
                        ({"queries": ["q"], "topk": -1}, "topk")):
        bad = post(server, body)
        assert bad.status_code == 422 and field in bad.json()["detail"], bad.text
    assert post(server, {"queries": ["Gritia"], "topk": 1}).status_code == 200


def test_concurrent_requests_are_batched_and_correct(server) -> None:
    questions = [f"Which river flows through the birthplace of person {i}?" for i in range(40)]

    async def main():
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            replies = await asyncio.gather(*[
                client.post(server.url + "/retrieve", json={"queries": [q], "topk": 3, "return_scores": True})
                for q in questions])
            together = await client.post(server.url + "/retrieve",
                                         json={"queries": questions[:8], "topk": 3, "return_scores": True})
        return replies, together

    before = httpx.get(server.url + "/health").json()
    replies, together = asyncio.run(main())
    assert all(r.status_code == 200 for r in replies)
    single = [r.json()["result"][0] for r in replies]
    assert [[h["document"]["id"] for h in hits] for hits in single[:8]] == \
        [[h["document"]["id"] for h in hits] for hits in together.json()["result"]]
    after = httpx.get(server.url + "/health").json()
    assert after["queries_served"] - before["queries_served"] == 48
    assert after["batches"] - before["batches"] < 41  # some requests shared an index call


def test_remote_retriever_against_the_server(server) -> None:
    retriever = RemoteRetriever(server.url, api_key=KEY)
    hits = retriever.search(["Which river flows through Gritia?"], k=3)
    assert hits[0][0].title == "Gritia" and hits[0][0].score is not None
    assert asyncio.run(retriever.asearch(["Gritia"], k=2))[0][0].title == "Gritia"
    assert retriever.health()["status"] == "ok"
    with pytest.raises(RetrieverError, match="HTTP 401"):
        RemoteRetriever(server.url + "/retrieve", api_key="wrong", retries=0).search(["x"], 1)
    with pytest.raises(RetrieverError, match="HTTP 422.*between 1 and 10"):
        retriever.search(["x"], k=50)


def test_remote_retriever_names_the_url_when_down() -> None:
    url = f"http://127.0.0.1:{free_port()}/retrieve"
    retriever = RemoteRetriever(url, retries=2, backoff=0.01, timeout=2)
    with pytest.raises(RetrieverUnavailableError, match=url) as info:
        retriever.search(["x"], 1)
    assert "3 attempt(s)" in str(info.value) and info.value.url == url
    with pytest.raises(RetrieverUnavailableError, match=url):
        asyncio.run(retriever.asearch(["x"], 1))


def test_demo_server_needs_no_index(capsys, monkeypatch) -> None:
    """A newcomer's first step: `s3 serve` with nothing else serves the shipped demo corpus."""
    served = {}
    monkeypatch.setattr("s3_agents.server.serve", lambda retriever, **kwargs: served.update(kwargs, r=retriever))
    code, _, err = run_main(capsys, "serve", "--embedder", "hashing")
    assert code == 0, err
    assert served["info"] == {"index": "demo"} and served["host"] == "127.0.0.1"
    running = ThreadedServer(create_app(served["r"], info=served["info"]))
    try:
        payload = httpx.post(running.url + "/retrieve", json={"queries": ["currency of Ketroul"], "topk": 1,
                                                              "return_scores": True}).json()
        assert "Ketroul" in payload["result"][0][0]["document"]["contents"]
        assert httpx.get(running.url + "/health").json()["index"] == "demo"
    finally:
        running.stop()
