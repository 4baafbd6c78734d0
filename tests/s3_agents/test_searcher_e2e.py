"""End to end against a real `python -m llama_cpp.server` serving SmolLM2: searcher and generator."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from s3_agents import (
    ContextWindowError,
    FaissRetriever,
    Generator,
    LLMClientError,
    LLMUnavailableError,
    OpenAICompatClient,
    RagCache,
    S3Searcher,
    SearchConfig,
)
from s3_agents.scoring import ascore_episode
from tests.conftest import free_port

pytestmark = pytest.mark.slow

CONFIG = SearchConfig(max_new_tokens=96)


@pytest.fixture(scope="module")
def retriever(demo_corpus, minilm) -> FaissRetriever:
    return FaissRetriever.from_passages(demo_corpus.passages, minilm)


@pytest.fixture(scope="module")
def client(llama_server) -> OpenAICompatClient:
    return OpenAICompatClient(llama_server.url, llama_server.model, timeout=120)


def test_episodes_keep_their_invariants(client, retriever, demo_questions) -> None:
    searcher = S3Searcher(client, retriever, CONFIG)
    questions = [demo_questions[80].question]      # one episode: its invariants are per episode
    states = asyncio.run(searcher.abatch(questions, concurrency=4))
    for state in states:
        assert len(state["queries"]) <= CONFIG.max_turns and 1 <= len(state["outputs"]) <= CONFIG.max_turns + 1
        assert state["stop_reason"] in ("complete", "max_turns", "max_generations")
        retrieved = {p.id for b in state["blocks"] for p in b["passages"]}
        assert state["context"] and {p.id for p in state["context"]} <= retrieved
        for block in state["blocks"]:
            if block["selected"] is not None:
                assert len(block["selected"]) <= CONFIG.max_select
        # The transcript keeps what the model wrote apart from what was inserted.
        assert [s["text"] for s in state["transcript"] if s["source"] == "model"] == state["outputs"]
        assert sum(1 for s in state["transcript"] if s["source"] == "env") == len(state["queries"]) + state["invalid"]


def test_generator_and_reward_through_the_server(client, retriever, demo_questions, tmp_path: Path) -> None:
    generator = Generator(client)
    cache = RagCache(tmp_path / "rag.sqlite", retriever_id="demo", generator_id=client.model, k=3)
    item = demo_questions[0]
    state = S3Searcher(client, retriever, CONFIG).search(item.question)
    score = asyncio.run(ascore_episode(state["question"], state["context"], item.answers, generator, cache,
                                       retriever=retriever))
    assert score.answer and score.acc in (0.0, 1.0) and score.acc_rag in (0.0, 1.0)
    assert score.reward == score.acc - score.acc_rag
    assert cache.get(item.question).answer == score.rag_answer     # the baseline was stored


def test_precompute_survives_a_dead_endpoint_and_resumes(client, retriever, demo_questions, tmp_path: Path) -> None:
    items = demo_questions[:5]
    path = tmp_path / "rag.sqlite"
    live = RagCache(path, retriever_id="demo", generator_id=client.model, k=3)
    assert live.precompute(items[:2], retriever, Generator(client), show_progress=False)["computed"] == 2

    dead = OpenAICompatClient(f"http://127.0.0.1:{free_port()}/v1", client.model, retries=1, timeout=2)
    with pytest.raises(LLMUnavailableError) as info:
        live.precompute(items, retriever, Generator(dead), show_progress=False)
    assert dead.base_url in str(info.value) and "smollm2" in str(info.value)
    assert len(live) == 2                                               # nothing lost

    again = RagCache(path, retriever_id="demo", generator_id=client.model, k=3)
    counts = again.precompute(items, retriever, Generator(client), show_progress=False)
    assert counts == {"total": 5, "cached": 2, "computed": 3} and len(again) == 5


def test_unknown_model_and_dead_endpoint_errors(llama_server) -> None:
    with pytest.raises(LLMClientError, match=r"model 'qwen-7b' is not served at .*it serves: smollm2"):
        OpenAICompatClient(llama_server.url, "qwen-7b").check()
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMUnavailableError, match=f"{url}.*'smollm2'"):
        OpenAICompatClient(url, "smollm2", retries=0).chat([{"role": "user", "content": "hi"}])


def test_a_prompt_over_the_servers_window_is_a_context_window_error(client) -> None:
    """llama-cpp-python's server answers HTTP 400 (context_length_exceeded): the graph ends such episodes."""
    with pytest.raises(ContextWindowError, match="context length"):
        client.chat([{"role": "user", "content": "ocean " * 9000}], max_tokens=4)


def test_s3_search_cli_against_the_server(s3, llama_server, tmp_path) -> None:
    page = tmp_path / "episode.html"
    code, out, err = s3("search", "Which river flows through Gritia?", "--policy-url", llama_server.url,
                        "--policy-model", llama_server.model, "--config", "8-3-1", "--html", str(page))
    assert code == 0, err
    for heading in ("initial retrieval", "searcher, generation 1", "context for the generator", "answer (smollm2)"):
        assert heading in out
    # The episode as a browser page (tests/s3_agents/test_report_html.py drives the page in Chromium).
    data = json.loads(re.search(r'id="data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S).group(1))
    (row,) = data["rows"]
    assert row["question"] == "Which river flows through Gritia?" and row["answer"] and row["scores"] is None
    assert row["trace"][0]["type"] == "retrieval" and row["trace"][1]["type"] == "generation"
    assert set(row["context"]) <= set(data["passages"])
    code, _, err = s3("search", "q", "--policy-url", llama_server.url, "--policy-model", "nope")
    assert code == 1 and "not served" in err
    code, _, err = s3("search", "q", "--config", "8-3")
    assert code == 2 and "8-3-3" in err


def test_s3_demo_runs_offline(s3) -> None:
    code, out, err = s3("demo", "--question-id", "q30", "--config", "8-3-1")
    assert code == 0, err
    for text in ("initial retrieval", "context for the generator", "answer with the searcher's context",
                 "answer with naive RAG", "gold:"):
        assert text in out
    code, _, err = s3("demo", "--question-id", "q9999")
    assert code == 2 and "no demo question" in err
