"""One Gain-Beyond-RAG scorer: cache hit, a missing baseline computed (the retriever opened only then), and the
cache's one key rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from s3_agents import FaissRetriever, Generator, HashingEmbedder, RagCache, load_demo_corpus
from s3_agents.rag_cache import RagEntry
from s3_agents.scoring import ascore_episode, score_episode
from s3_agents.testing import ScriptedClient

QUESTION = "Who founded Gritia?"


def test_a_cached_baseline_is_used_and_the_retriever_never_opened() -> None:
    cache = RagCache(":memory:", retriever_id="r", generator_id="g")
    cache.put(QUESTION, RagEntry("no idea", 0.0, 0.0))
    generator = Generator(ScriptedClient(lambda m: "Kaemia Tritrir"))
    context = load_demo_corpus().passages[:2]

    def never() -> FaissRetriever:
        raise AssertionError("the retriever was opened for a cached baseline")

    score = score_episode(QUESTION, context, ["Kaemia Tritrir"], generator, cache, retriever=never)
    assert (score.acc, score.acc_rag, score.reward, score.rag_answer) == (1.0, 0.0, 1.0, "no idea")
    gbr_acc = score_episode(QUESTION, context, ["Kaemia Tritrir"], generator, cache, variant="gbr+acc")
    assert gbr_acc.reward == 2.0


def test_a_missing_baseline_is_computed_once_and_stored() -> None:
    cache = RagCache(":memory:", retriever_id="r", generator_id="g")
    generator = Generator(ScriptedClient(lambda m: "Kaemia Tritrir"))
    opened = []

    def open_retriever() -> FaissRetriever:
        opened.append(1)
        return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())

    score = asyncio.run(ascore_episode(QUESTION, [], ["Kaemia Tritrir"], generator, cache, retriever=open_retriever))
    assert score.acc_rag == 1.0 and score.reward == 0.0 and opened == [1]
    assert cache.get(QUESTION) == RagEntry("Kaemia Tritrir", 1.0, 1.0)
    with pytest.raises(ValueError, match="s3 precompute"):
        score_episode("Another question?", [], ["x"], generator, cache)


def test_one_key_rule_for_a_retriever(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert RagCache.retriever_key("index") == str(tmp_path / "index") == RagCache.retriever_key(Path("index"))
    assert RagCache.retriever_key("http://127.0.0.1:3000/retrieve") == "http://127.0.0.1:3000/retrieve"
    assert RagCache.retriever_key(None) == RagCache.retriever_key("") == "demo:minilm-faiss"
