"""The GBR reward function against a real llama.cpp-served generator and the SQLite RAG cache."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from s3_agents import HashingEmbedder, build_index, load_demo_corpus
from s3_agents.errors import LLMUnavailableError
from s3_agents.rag_cache import RagCache, RagEntry
from s3_agents.training.data import write_parquet
from s3_agents.training.reward import compute_score
from tests.conftest import free_port

QUESTION = "What is the currency of Ketroul?"
TRUTH = {"question": QUESTION, "target": ["mobroun"]}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return str(build_index(load_demo_corpus().passages, tmp_path_factory.mktemp("idx") / "faiss",
                           embedder=HashingEmbedder(), show_progress=False).parent)


def episode(passage_ids: list[str]) -> dict:
    by_id = {p.id: p for p in load_demo_corpus().passages}
    return {"s3_question": QUESTION, "s3_searches": 2,
            "s3_context": [{"id": i, "title": by_id[i].title, "text": by_id[i].text} for i in passage_ids]}


def score(server, cache, **kwargs):
    return asyncio.run(compute_score("demo", "", TRUTH, kwargs.pop("extra", episode(["2"])),
                                     generator_url=server.url, generator_model=server.model, rag_cache=str(cache),
                                     **kwargs))


@pytest.mark.slow
def test_gbr_against_a_cached_baseline(llama_server, tmp_path, index_dir):
    cache_path = tmp_path / "rag.sqlite"
    cache = RagCache(cache_path, retriever_id=RagCache.retriever_key(index_dir), generator_id=llama_server.model, k=3)
    cache.put(QUESTION, RagEntry("no idea", 0.0, 0.0))
    result = score(llama_server, cache_path, retriever=index_dir)
    assert result["acc"] in (0.0, 1.0) and result["acc_rag"] == 0.0
    assert result["score"] == result["acc"] - result["acc_rag"]
    assert result["num_selected"] == 1.0 and result["searches"] == 2.0
    doubled = score(llama_server, cache_path, retriever=index_dir, variant="gbr+acc")
    assert doubled["score"] == 2 * doubled["acc"] - doubled["acc_rag"]
    # A baseline of 1 turns the same answer into a non-positive gain.
    cache.put(QUESTION, RagEntry("mobroun", 1.0, 1.0))
    assert score(llama_server, cache_path, retriever=index_dir)["score"] == result["acc"] - 1.0


@pytest.mark.slow
def test_missing_baseline_is_computed_and_stored(llama_server, tmp_path, index_dir):
    cache_path = tmp_path / "rag.sqlite"
    result = score(llama_server, cache_path, retriever=index_dir, judge=False)
    cache = RagCache(cache_path, retriever_id=RagCache.retriever_key(index_dir), generator_id=llama_server.model, k=3)
    stored = cache.get(QUESTION)
    assert stored is not None and stored.acc == result["acc_rag"] and len(cache) == 1


@pytest.mark.slow
def test_missing_baseline_without_retriever_says_what_to_run(llama_server, tmp_path):
    with pytest.raises(ValueError, match="s3 precompute"):
        score(llama_server, tmp_path / "empty.sqlite", judge=False, extra={**episode(["2"]), "s3_context": []})


def test_generator_down_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMUnavailableError, match=url.replace(".", r"\.")):
        asyncio.run(compute_score("demo", "", TRUTH, episode(["2"]), generator_url=url, generator_model="m",
                                  rag_cache=str(tmp_path / "c.sqlite"), retries=0, timeout=2))


def test_rewards_without_a_generator_never_call_it(tmp_path):
    """context and support score the first rag_k documents alone: a generator URL where nothing listens is fine."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    # The ground truth as verl hands it over: read back from parquet, where the ids became a numpy array.
    write_parquet([{"reward_model": {"ground_truth": {**TRUTH, "supporting_ids": ["2", "9"]}}}], tmp_path / "t.parquet")
    truth = pd.read_parquet(tmp_path / "t.parquet")["reward_model"][0]["ground_truth"]
    assert not isinstance(truth["supporting_ids"], list)

    def run(variant, ids, **kwargs):
        return asyncio.run(compute_score("demo", "", truth, episode(ids), generator_url=url, generator_model="none",
                                         rag_cache=str(tmp_path / "rag.sqlite"), variant=variant, **kwargs))

    found = run("context", ["2"])
    assert found["score"] == found["in_context"] == 1.0 and found["support_recall"] == 0.5
    assert all(found[k] != found[k] for k in ("acc", "acc_rag", "em", "f1"))             # NaN: not measured
    assert run("support", ["9", "2"])["score"] == 1.0
    # Only the first rag_k documents count: keeping more buys nothing.
    late = run("support", ["1", "3", "4", "2"], rag_k=3)
    assert late["score"] == 0.0 and late["support_recall"] == 0.5
    assert run("context", ["1", "3", "4", "2"], rag_k=3)["score"] == 0.0
    with pytest.raises(ValueError, match="supporting passage ids"):
        asyncio.run(compute_score("demo", "", TRUTH, episode(["2"]), generator_url=url, generator_model="none",
                                  rag_cache=str(tmp_path / "rag.sqlite"), variant="support"))
    with pytest.raises(LLMUnavailableError):                   # while GBR does need the generator
        run("gbr", ["2"], retriever=None, retries=0, timeout=2)
