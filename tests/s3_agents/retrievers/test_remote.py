"""Pure request/response helpers of the remote retriever, and retry behaviour on a mock transport."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from s3_agents.errors import RetrieverError, RetrieverUnavailableError
from s3_agents.retrievers.remote import RemoteRetriever, build_request, parse_response, public_url
from s3_agents.types import Passage


def test_build_request_is_the_s3_body() -> None:
    assert build_request(["a", "b"], 3) == {"queries": ["a", "b"], "topk": 3, "return_scores": True}


def test_parse_both_reply_shapes() -> None:
    with_scores = {"result": [[{"document": {"id": "1", "contents": '"T"\nbody'}, "score": 0.5}]]}
    without = {"result": [[{"id": "1", "title": "T", "text": "body", "contents": '"T"\nbody'}]]}
    assert parse_response(with_scores, 1) == [[Passage("1", "T", "body", 0.5)]]
    assert parse_response(without, 1) == [[Passage("1", "T", "body")]]


def test_messages_name_the_server_without_its_credentials() -> None:
    url = "http://user:pw@10.0.0.5:3000/retrieve?token=t0ken"
    assert public_url(url) == "http://10.0.0.5:3000/retrieve"
    assert public_url("https://[::1]/x/", path=False) == "https://[::1]"
    retriever = RemoteRetriever(url, retries=0)
    retriever._client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(RetrieverUnavailableError) as info:
        retriever.search(["x"], 1)
    assert info.value.url == "http://10.0.0.5:3000/retrieve" and "pw" not in str(info.value)
    assert "t0ken" not in str(info.value) and retriever.url == url       # the request itself keeps both


@pytest.mark.parametrize(("payload", "n", "words"), [
    ({"results": []}, 1, 'expected {"result"'),
    ({"result": []}, 1, "sent 1 queries but the server returned 0"),
    ({"result": ["x"]}, 1, "expected a list"),
    ({"result": [[{"document": {"contents": "x"}}]]}, 1, "unreadable document"),
])
def test_parse_rejects_other_shapes(payload, n, words) -> None:
    with pytest.raises(RetrieverError, match=words):
        parse_response(payload, n)


def make(handler, **kwargs) -> RemoteRetriever:
    retriever = RemoteRetriever("http://retriever.test", backoff=0.0, **kwargs)
    retriever._client = httpx.Client(transport=httpx.MockTransport(handler))
    return retriever


def test_retries_server_errors_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503)
        return httpx.Response(200, json={"result": [[{"id": "1", "contents": '"T"\nb'}]]})

    assert make(handler, retries=3).search(["q"], 1) == [[Passage("1", "T", "b")]]
    assert len(calls) == 3 and str(calls[0].url) == "http://retriever.test/retrieve"


def test_async_search_retries_the_same_way(monkeypatch) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        if len(calls) == 2:
            return httpx.Response(502)
        return httpx.Response(200, json={"result": [[{"id": "1", "contents": '"T"\nb'}]]})

    plain = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: plain(transport=httpx.MockTransport(handler), **kw))
    retriever = RemoteRetriever("http://retriever.test", backoff=0.0, retries=2, api_key="k")
    assert asyncio.run(retriever.asearch(["q"], 1)) == [[Passage("1", "T", "b")]]
    assert len(calls) == 3 and calls[-1].headers["authorization"] == "Bearer k"
    calls.clear()
    with pytest.raises(RetrieverUnavailableError, match=r"after 2 attempt.*HTTP 502"):
        asyncio.run(RemoteRetriever("http://retriever.test", backoff=0.0, retries=1).asearch(["q"], 1))


def test_gives_up_after_retries_naming_the_url() -> None:
    with pytest.raises(RetrieverUnavailableError, match="http://retriever.test/retrieve.*HTTP 503"):
        make(lambda r: httpx.Response(503), retries=1).search(["q"], 1)


def test_client_errors_are_not_retried() -> None:
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(401, json={"detail": "missing or wrong API key"})

    with pytest.raises(RetrieverError, match="HTTP 401: missing or wrong API key"):
        make(handler, retries=3).search(["q"], 1)
    assert len(calls) == 1


def test_bad_url_and_options() -> None:
    with pytest.raises(ValueError, match="http://"):
        RemoteRetriever("127.0.0.1:3000")
    with pytest.raises(ValueError):
        RemoteRetriever("http://x", retries=-1)
