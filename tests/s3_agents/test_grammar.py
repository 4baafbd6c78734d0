"""Constrained decoding of the searcher's actions: the grammar, each backend's request, real SmolLM2 runs."""

from __future__ import annotations

import json

import httpx
import pytest

from s3_agents import FaissRetriever, HashingEmbedder, S3Searcher, SearchConfig, load_demo_corpus
from s3_agents.llm import OpenAICompatClient
from s3_agents.protocol import action_grammar, candidate_spans, parse_action
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


def test_candidate_spans_are_names_read_outside_the_question() -> None:
    docs = [("Big", "Big is a 1988 film by Penny Marshall, with Tom Hanks; Penny Marshall directed it"),
            ("Tom Hanks", "Tom Hanks was born in Concord, California, near the Walt Disney Studios, in New\nYork")]
    # Not the titles shown, not what the question holds, each once, and no line break inside a query.
    assert candidate_spans("Who directed the film about Tom Hanks?", docs) == [
        "1988", "Penny Marshall", "Concord", "California", "Walt Disney Studios"]
    assert candidate_spans("Who?", docs, limit=2) == ["1988", "Penny Marshall"]
    assert candidate_spans("Who?", docs, max_chars=10) == ["1988", "Concord", "California"]
    assert candidate_spans("Who?", []) == []


def test_candidate_spans_end_with_their_sentence() -> None:
    """A name at the end of a sentence is a candidate alone ("Gian Carlo Menotti", not "Gian Carlo Menotti. It");
    initials, dotted acronyms and common abbreviations stay inside a name."""
    text = ("Maria Golovin is an opera by Gian Carlo Menotti. It premiered in 1958.\nLater Dr. Anna Ruiz of the U.S. "
            "Navy sang it in St. Louis with John F. Kennedy present. The")
    assert candidate_spans("Who wrote Maria Golovin?", [("Maria Golovin", text)]) == [
        "Gian Carlo Menotti", "1958", "Later Dr. Anna Ruiz", "U.S. Navy", "St. Louis", "John F. Kennedy", "The"]


def test_span_grammar_allows_only_the_spans_that_fit() -> None:
    config = SearchConfig.from_name("3-2-2", constrained=True, max_new_tokens=64)   # queries of at most 16 characters
    text = action_grammar(config, spans=["Penny Marshall", "Penny Marshall", "Walt Disney Studios", "Ünïcode"])
    assert text.startswith("root ::= select? (done | more)\n") and "qchar" not in text
    assert text.endswith('"\\"}</query>"\nspan ::= "Penny Marshall" | "Ünïcode"\n')
    nothing = action_grammar(config, spans=["Walt Disney Studios"])
    assert nothing.startswith("root ::= select? done\n") and "more" not in nothing and "span" not in nothing
    with pytest.raises(ValueError, match="refuses"):
        action_grammar(config, spans=['say "hi"'])
    with pytest.raises(ValueError, match="constrained=True"):
        SearchConfig(query_spans=True)


def test_graph_passes_each_turn_the_spans_read_so_far(retriever) -> None:
    config = SearchConfig.from_name("3-2-2", constrained=True, query_spans=True)
    client = ScriptedClient.one_search("Ketroul currency")
    state = S3Searcher(client, retriever, config).search(QUESTIONS[1])
    first, second = client.grammars
    read = [[(p.title or "", p.text) for p in block["passages"]] for block in state["blocks"]]
    assert first == action_grammar(config, spans=candidate_spans(state["question"], read[0]))
    assert second == action_grammar(config, spans=candidate_spans(state["question"], read[0] + read[1]))
    assert first != second and "span ::= " in first


def test_llama_cpp_grammars_are_parsed_once_and_the_cache_is_bounded() -> None:
    from s3_agents.llm.local import llama_grammar

    text = action_grammar(CONFIG, spans=["Penny Marshall"])
    assert llama_grammar(text) is llama_grammar(text)
    assert llama_grammar.cache_info().maxsize == 64          # span grammars differ turn by turn: no unbounded growth


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


@pytest.mark.slow
def test_the_shipped_searcher_queries_only_spans_it_has_read() -> None:
    """SmolLM2 with the real adapter in llama.cpp, over the shipped real corpus: every query it writes under
    ``query_spans`` is a name of the documents shown before it (it searches about once a question; on this one,
    once)."""
    from s3_agents.trained import trained_config, trained_searcher
    from s3_agents.worlds import default_world_dir, default_world_retriever, load_world

    policy = trained_searcher()
    searcher = S3Searcher(policy, default_world_retriever(name="realqa"), trained_config(query_spans=True))
    try:
        states = [searcher.search(q["question"]) for q in load_world(default_world_dir("realqa")).sample("dev", 1)]
    finally:
        policy.close()
    assert sum(len(state["queries"]) for state in states) >= 1
    for state in states:
        assert state["invalid"] == 0
        for turn, query in enumerate(state["queries"], start=1):
            read = [(p.title or "", p.text) for block in state["blocks"][:turn] for p in block["passages"]]
            assert query in candidate_spans(state["question"], read), (query, turn)
