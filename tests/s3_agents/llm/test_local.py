"""In-process models on the real SmolLM2 GGUF: llama.cpp and transformers."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from s3_agents.errors import ContextWindowError
from s3_agents.llm import LlamaCppClient, TransformersClient, smollm2_gguf_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama() -> LlamaCppClient:
    client = LlamaCppClient(n_ctx=2048)
    yield client
    client.close()


def test_smollm2_ships_in_its_wheel() -> None:
    path = smollm2_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_llama_cpp_chat_completion_and_stop(llama) -> None:
    reply = llama.chat([{"role": "user", "content": "What is 2 + 3?"}], max_tokens=16)
    assert reply.text and reply.finish_reason in ("stop", "length") and reply.completion_tokens >= 1
    raw = llama.complete("The capital of France is", max_tokens=6)
    assert "Paris" in raw.text
    cut = llama.complete("Count: one, two, three, four, five, six", max_tokens=12, stop=[","])
    assert "," not in cut.text


def test_llama_cpp_calls_from_loops_and_threads_are_serialised(llama, monkeypatch) -> None:
    prompts = [[{"role": "user", "content": f"Say {word}"}] for word in ("one", "two", "three")]
    alone = [llama.chat(m, max_tokens=6).text for m in prompts]
    inside, overlaps, count = 0, 0, threading.Lock()
    generate = llama._llm.create_chat_completion

    def spy(**kwargs):                      # counts calls that find another one inside llama.cpp
        nonlocal inside, overlaps
        with count:
            inside += 1
            overlaps += inside > 1
        try:
            time.sleep(0.05)                # room for a second thread to enter, were there no lock
            if inside > 1:                  # two at once would corrupt (or hang) the shared context
                raise RuntimeError("two calls inside one llama.cpp context")
            return generate(**kwargs)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(llama._llm, "create_chat_completion", spy)

    async def run(batch):
        return [reply.text for reply in await asyncio.gather(*(llama.achat(m, max_tokens=6) for m in batch))]

    # Two event loops in two threads, two coroutines each: one loop's lock cannot order the other's calls.
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda batch: asyncio.run(run(batch)), [prompts[:2], prompts[1:]])
    assert overlaps == 0                    # one context, one call at a time
    assert first + second == alone[:2] + alone[1:]      # each reply is its own prompt's, as when run alone


def test_a_prompt_over_the_window_is_a_context_window_error(llama) -> None:
    with pytest.raises(ContextWindowError, match="exceed context window of 2048"):
        llama.chat([{"role": "user", "content": "ocean " * 2100}], max_tokens=4)
    with pytest.raises(ContextWindowError):
        llama.complete([1] * 2100, max_tokens=4)
    assert llama.chat([{"role": "user", "content": "Say hi"}], max_tokens=4).text   # and the client goes on


def test_a_searcher_whose_prompt_outgrows_a_real_window_ends_the_episode() -> None:
    from s3_agents import FaissRetriever, HashingEmbedder, S3Searcher, load_demo_corpus

    small = LlamaCppClient(n_ctx=256)                  # the searcher's prompt alone is longer
    retriever = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
    try:
        state = S3Searcher(small, retriever).search("What is the currency of Ketroul?")
    finally:
        small.close()
    assert state["stop_reason"] == "context_full" and state["outputs"] == []
    assert [p.id for p in state["context"]] == [p.id for p in state["blocks"][0]["passages"]]


def test_llama_cpp_tokenizer_round_trip(llama) -> None:
    ids = llama.tokenize("<information>\nDoc 1")
    assert ids and llama._llm.detokenize(ids).decode() == "<information>\nDoc 1"


def test_transformers_loads_the_gguf_by_path() -> None:
    path = smollm2_gguf_path()
    client = TransformersClient(str(path.parent), gguf_file=path.name)
    reply = client.complete("The capital of France is", max_tokens=5)
    assert "Paris" in reply.text and reply.completion_tokens == 5
    chat = client.chat([{"role": "user", "content": "What is 2 + 3?"}], max_tokens=8, stop=["\n"])
    assert chat.text and "\n" not in chat.text
    assert client.tokenize("<query>") and client.model.endswith(".gguf")
    window = client._lm.config.max_position_embeddings
    with pytest.raises(ContextWindowError, match=f"context window of {window}"):
        client.complete([1] * window, max_tokens=1)
