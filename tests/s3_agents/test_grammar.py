"""Constrained decoding of the searcher's actions: the grammar, each backend's request, real SmolLM2 runs."""

from __future__ import annotations

import json

import httpx
import pytest

from s3_agents import FaissRetriever, HashingEmbedder, S3Searcher, SearchConfig, load_demo_corpus
from s3_agents.llm import OpenAICompatClient
from s3_agents.protocol import action_grammar, parse_action
from s3_agents.testing import ScriptedClient

CONFIG = SearchConfig.from_name("3-2-1", max_new_tokens=64, constrained=True, temperature=0.7)
QUESTIONS = ["Which river flows through the birthplace of Kaemia Tritrir?", "What is the currency of Ketroul?",
             "Who founded Seloun Guild?"]


@pytest.fixture(scope="module")
def retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


def test_grammar_follows_the_config() -> None:
    text = action_grammar(SearchConfig.from_name("5-3-3"))
    assert 'id ::= "1" | "2" | "3" | "4" | "5"\n' in text and '(", " id){0,2}' in text and "qchar{1,160}" in text
    assert "qchar{1,52}" in action_grammar(SearchConfig.from_name("5-3-3", max_new_tokens=100))  # fits the turn
    assert '"1" | "2" | "3"\n' in action_grammar(SearchConfig.from_name("2-1-1", initial_k=3))
    assert "{0," not in action_grammar(SearchConfig.from_name("4-1-2"))
    with pytest.raises(ValueError):
        action_grammar(max_query_chars=0)


def test_graph_passes_the_grammar_only_when_constrained(retriever) -> None:
    for constrained in (True, False):
        client = ScriptedClient(["<search_complete>True</search_complete>"])
        config = SearchConfig.from_name("3-2-2", constrained=constrained)
        S3Searcher(client, retriever, config).search(QUESTIONS[0])
        assert client.grammars == [action_grammar(config) if constrained else None]


def _recording(owned_by: str, seen: list[httpx.Request]) -> OpenAICompatClient:
    reply = {"choices": [{"message": {"role": "assistant", "content": "<search_complete>True</search_complete>"},
                          "finish_reason": "stop"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m", "owned_by": owned_by}]})
        return httpx.Response(200, json=reply)

    return OpenAICompatClient("http://llm.test", "m", http_client=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize(("owned_by", "field"), [("vllm", "structured_outputs"), ("me", "grammar")])
def test_request_carries_the_grammar_in_the_servers_form(owned_by, field) -> None:
    seen: list[httpx.Request] = []
    client = _recording(owned_by, seen)
    grammar = action_grammar()
    client.chat([{"role": "user", "content": "q"}], max_tokens=9, stop=["</query>"], grammar=grammar)
    client.chat([{"role": "user", "content": "q"}], max_tokens=9, grammar=grammar)
    paths = [r.url.path for r in seen]
    assert paths == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]   # asked once, then cached
    body = json.loads(seen[1].content)
    expected = {"grammar": grammar} if field == "structured_outputs" else grammar
    assert body[field] == expected
    assert ("grammar" in body) == (field == "grammar")
    assert body == {"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9,
                    "temperature": 0.0, "stop": ["</query>"], field: expected}


def test_vllm_form_without_asking() -> None:
    seen: list[httpx.Request] = []
    client = _recording("me", seen)
    client.grammar_api = "vllm"
    client.chat([{"role": "user", "content": "q"}], grammar="root ::= \"x\"")
    assert [r.url.path for r in seen] == ["/v1/chat/completions"]
    assert json.loads(seen[0].content)["structured_outputs"] == {"grammar": "root ::= \"x\""}
    with pytest.raises(ValueError, match="grammar_api"):
        OpenAICompatClient("http://llm.test", "m", grammar_api="sglang")  # type: ignore[arg-type]


def _all_valid(states) -> tuple[int, int]:
    outputs = [text for state in states for text in state["outputs"]]
    return sum(parse_action(text).kind == "invalid" for text in outputs), len(outputs)


@pytest.mark.slow
def test_untrained_smollm2_acts_validly_under_the_grammar_at_the_llama_cpp_server(llama_server, retriever) -> None:
    client = OpenAICompatClient(llama_server.url, llama_server.model)
    constrained = S3Searcher(client, retriever, CONFIG).batch(QUESTIONS[:2], concurrency=1)
    invalid, turns = _all_valid(constrained)
    assert client.grammar_api == "llama.cpp"          # "auto" asked /models: llama.cpp's server
    assert turns >= 2 and invalid == 0
    assert all(state["invalid"] == 0 for state in constrained)


@pytest.mark.slow
def test_untrained_smollm2_acts_validly_under_the_grammar_in_process(retriever, smollm2_hf) -> None:
    from s3_agents.llm import LlamaCppClient, TransformersClient

    llama = LlamaCppClient(n_ctx=4096)
    try:
        invalid, turns = _all_valid(S3Searcher(llama, retriever, CONFIG).batch(QUESTIONS[1:2], concurrency=1))
        assert turns >= 1 and invalid == 0
    finally:
        llama.close()
    transformers = TransformersClient(str(smollm2_hf))
    invalid, turns = _all_valid(S3Searcher(transformers, retriever, CONFIG).batch(QUESTIONS[2:], concurrency=1))
    assert turns >= 1 and invalid == 0
