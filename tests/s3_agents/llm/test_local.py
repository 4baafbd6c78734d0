"""In-process models on the real SmolLM2 GGUF: llama.cpp and transformers."""

from __future__ import annotations

import asyncio

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


def test_llama_cpp_async_calls_are_serialised(llama) -> None:
    async def run():
        return await asyncio.gather(*(llama.achat([{"role": "user", "content": f"Say {i}"}], max_tokens=4)
                                      for i in range(3)))
    assert len(asyncio.run(run())) == 3


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
