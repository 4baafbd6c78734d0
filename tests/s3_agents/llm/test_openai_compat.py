"""Request building, reply parsing, retries and errors of the OpenAI-compatible client (mock transport)."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from s3_agents.errors import LLMClientError, LLMUnavailableError
from s3_agents.llm import OpenAICompatClient, truncate_at_stop

REPLY = {"choices": [{"message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop",
                      "stop_reason": "</query>"}], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}


def make(handler, **kwargs) -> OpenAICompatClient:
    return OpenAICompatClient("http://llm.test", "m", http_client=httpx.Client(transport=httpx.MockTransport(handler)),
                              **kwargs)


def test_chat_request_and_reply() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=REPLY)

    client = make(handler, api_key="sk-test", extra_body={"top_k": 20})
    reply = client.chat([{"role": "user", "content": "capital?"}], max_tokens=7, stop=["</query>"], seed=3)
    assert (reply.text, reply.finish_reason, reply.stop, reply.prompt_tokens) == ("Paris", "stop", "</query>", 9)
    request = seen[0]
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    body = json.loads(request.content)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "capital?"}], "max_tokens": 7,
                    "temperature": 0.0, "top_k": 20, "stop": ["</query>"], "seed": 3}


def test_api_key_comes_from_the_environment(monkeypatch) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=REPLY)

    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    make(handler).chat([{"role": "user", "content": "x"}])
    make(handler, api_key="given").complete("x")
    monkeypatch.delenv("OPENAI_API_KEY")
    make(handler).chat([{"role": "user", "content": "x"}])                      # a local server: no header
    assert seen == ["Bearer from-env", "Bearer given", None]


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/chat/completions"])
def test_base_url_forms(url) -> None:
    assert OpenAICompatClient(url, "m").base_url == "http://h:1/v1"


def test_completion_endpoint() -> None:
    def handler(request):
        assert request.url.path == "/v1/completions" and json.loads(request.content)["prompt"] == "The capital"
        return httpx.Response(200, json={"choices": [{"text": " is Paris", "finish_reason": "length"}]})

    assert make(handler).complete("The capital").text == " is Paris"


def test_retries_then_succeeds() -> None:
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503) if len(calls) < 3 else httpx.Response(200, json=REPLY)

    assert make(handler, retries=3).chat([{"role": "user", "content": "x"}]).text == "Paris"
    assert len(calls) == 3


def test_unavailable_names_url_and_model() -> None:
    def handler(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(LLMUnavailableError, match=r"http://llm.test/v1/chat/completions \(model 'm'\).*2 attempt"):
        make(handler, retries=1).chat([{"role": "user", "content": "x"}])


def test_unknown_model_lists_the_served_ones() -> None:
    def handler(request):
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "qwen"}, {"id": "llama"}]})
        return httpx.Response(404, json={"error": {"message": "The model `m` does not exist."}})

    with pytest.raises(LLMClientError, match=r"HTTP 404 for model 'm'.*does not exist.*serves: qwen, llama"):
        make(handler, retries=3).chat([{"role": "user", "content": "x"}])
    with pytest.raises(LLMClientError, match="model 'm' is not served at http://llm.test/v1; it serves: qwen, llama"):
        make(handler).check()


def test_reply_without_choices_is_an_error() -> None:
    with pytest.raises(LLMClientError, match="without a completion"):
        make(lambda r: httpx.Response(200, json={"oops": 1})).chat([{"role": "user", "content": "x"}])


def test_async_chat_uses_the_same_protocol() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(503) if len(calls) == 1 else httpx.Response(200, json=REPLY)

    client = OpenAICompatClient("http://llm.test", "m", retries=1, async_transport=httpx.MockTransport(handler))

    async def run():
        replies = await asyncio.gather(*(client.achat([{"role": "user", "content": str(i)}]) for i in range(5)))
        done = await client.acomplete("The capital", stop=["."])
        return replies, done

    replies, done = asyncio.run(run())
    assert [r.text for r in replies] == ["Paris"] * 5 and len(calls) == 7    # one 503 retried
    assert calls[-1] == {"model": "m", "prompt": "The capital", "max_tokens": 256, "temperature": 0.0, "stop": ["."]}
    assert done.text == "" and done.finish_reason == "stop"                  # a chat reply has no text field


def test_async_errors_name_url_and_model() -> None:
    status = 0
    client = OpenAICompatClient("http://llm.test", "m", retries=0, async_transport=httpx.MockTransport(
        lambda r: httpx.Response(status, json={"error": {"message": "nope"}})))

    async def run(code):
        nonlocal status
        status = code
        return await client.achat([{"role": "user", "content": "x"}])

    with pytest.raises(LLMUnavailableError, match=r"http://llm.test/v1/chat/completions \(model 'm'\).*HTTP 502"):
        asyncio.run(run(502))
    with pytest.raises(LLMClientError, match=r"HTTP 400 for model 'm': nope"):
        asyncio.run(run(400))


def test_each_event_loop_gets_its_own_async_client_closed_with_the_loop() -> None:
    client = OpenAICompatClient("http://llm.test", "m",
                                async_transport=httpx.MockTransport(lambda r: httpx.Response(200, json=REPLY)))

    async def used() -> openai.AsyncOpenAI:
        assert (await client.achat([{"role": "user", "content": "x"}])).text == "Paris"
        return await client._aclient()

    first, second = asyncio.run(used()), asyncio.run(used())
    assert first is not second and first.is_closed() and second.is_closed()     # closed as asyncio.run ended
    loop = asyncio.new_event_loop()
    try:
        idle = loop.run_until_complete(used())
        assert not idle.is_closed()
        client.close()                                                            # on its (idle) loop
        assert idle.is_closed()
    finally:
        loop.close()

    async def reopened() -> tuple[openai.AsyncOpenAI, openai.AsyncOpenAI]:
        before = await client._aclient()
        await client.aclose()
        return before, await used()

    before, after = asyncio.run(reopened())
    assert before.is_closed() and before is not after


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAICompatClient("localhost:8000", "m")
    with pytest.raises(ValueError, match="model"):
        OpenAICompatClient("http://x", "")


def test_truncate_at_stop() -> None:
    assert truncate_at_stop("a</query>b</x>", ["</x>", "</query>"]) == ("a", "</query>")
    assert truncate_at_stop("abc", ["</query>"]) == ("abc", None)
    assert truncate_at_stop("abc", None) == ("abc", None)


# -- a hung endpoint: accepts connections, never answers ----------------------------------------------
@pytest.fixture()
def hung_endpoint():
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])              # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_check_gives_up_on_a_hung_endpoint_in_seconds(hung_endpoint, monkeypatch) -> None:
    import time

    from s3_agents.llm import openai_compat

    assert openai_compat.CHECK_TIMEOUT == 10.0
    monkeypatch.setattr(openai_compat, "CHECK_TIMEOUT", 1.0)                  # the cap, shortened for the test
    client = OpenAICompatClient(hung_endpoint, "m", timeout=300, retries=0)       # replies may take minutes...
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match=rf"{hung_endpoint}/models .* did not answer within 1 s"):
        client.check()                                                           # ...the start-up check not
    assert time.monotonic() - started < 5


def test_read_timeout_is_separate_and_names_the_url(hung_endpoint) -> None:
    import time

    client = OpenAICompatClient(hung_endpoint, "m", timeout=1.5, retries=1)
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match=rf"{hung_endpoint}/chat/completions .*timeout 1.5 s each"):
        client.chat([{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 8
    assert client._timeouts.connect == 1.5 and OpenAICompatClient("http://h", "m")._timeouts.connect == 10.0
    with pytest.raises(ValueError, match="positive"):
        OpenAICompatClient("http://h", "m", timeout=0)


def test_cli_timeout_reaches_the_endpoint_check(s3, hung_endpoint) -> None:
    import time

    started = time.monotonic()
    code, out, err = s3("search", "Who founded Gritia?", "--policy-url", hung_endpoint, "--policy-model", "m",
                        "--timeout", "2")
    assert code != 0 and hung_endpoint in out + err
    assert "did not answer within 2 s" in out + err
    assert time.monotonic() - started < 60
