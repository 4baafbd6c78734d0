"""The trained searchers shipped in the package: they load, search under their grammar over their shipped corpus,
and run in `s3 demo`, `s3 search` and LlamaIndex."""

from __future__ import annotations

import os

import pytest

from s3_agents.trained import (
    DEFAULT_SEARCHER,
    SEARCHERS,
    trained_config,
    trained_searcher_dir,
    trained_searcher_info,
    trained_world,
)
from s3_agents.worlds import default_world_dir, load_world, uses_world_template

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", SEARCHERS)
def test_shipped_adapters_are_small_and_documented(name) -> None:
    info = trained_searcher_info(name)
    assert info["stage"] in ("warmstart", "ppo", "grpo") and info["command"]
    weights = trained_searcher_dir(name) / "adapter_model.safetensors"
    assert weights.stat().st_size < 12_000_000                  # an adapter, not a model
    config = trained_config(name)
    assert config.constrained and config.max_context_docs == info["config"]["max_context_docs"]
    assert config.fill_context == info["config"].get("fill_context", False)
    assert config.initial_k == info["config"].get("initial_k", 3)
    assert config.query_spans == info["config"].get("query_spans", False)
    assert trained_config(name, initial_k=7).initial_k == 7                 # an override beats searcher.json
    assert trained_world(name) == {"real": "realqa", "world": "world"}[name]
    assert trained_searcher_info() == trained_searcher_info(DEFAULT_SEARCHER)
    with pytest.raises(ValueError, match="no shipped searcher 'qwen'"):
        trained_searcher_dir("qwen")  # type: ignore[arg-type]


def test_the_shipped_real_corpus_holds_its_questions_supports() -> None:
    world = load_world(default_world_dir("realqa"))
    ids = {p.id for p in world.passages}
    questions = world.split("dev")
    assert len(questions) == 30 and not world.split("train") and not world.split("test")
    assert all(q["supporting_ids"] and set(q["supporting_ids"]) <= ids for q in questions)
    assert 250 <= len(world.passages) <= 300
    assert "CC BY-SA 4.0" in (default_world_dir("realqa") / "ATTRIBUTION.md").read_text()


def test_the_real_searcher_searches_real_questions_from_llamaindex() -> None:
    """``S3Retriever.from_trained()``: the default (real) searcher over the shipped real corpus (its index in the
    default cache); its queries are about the question, not the benchmark world's templates."""
    from llama_index.retrievers.s3 import S3Retriever

    retriever = S3Retriever.from_trained()
    questions = load_world(default_world_dir("realqa")).sample("dev", 2)
    nodes = retriever.retrieve(questions[0]["question"])
    assert nodes and all(n.node.metadata["title"] for n in nodes)
    assert nodes[0].node.metadata["stop_reason"] != "context_full"
    states = [retriever.searcher.search(q["question"]) for q in questions[1:]]
    assert all(s["invalid"] == 0 and s["context"] and s["stop_reason"] != "context_full" for s in states)
    queries = [query for s in states for query in s["queries"]] + nodes[0].node.metadata["queries"]
    assert queries and not any(map(uses_world_template, queries))
    retriever.searcher.context.policy.close()


def test_s3_demo_trained_searches_with_the_shipped_searcher(s3, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("S3_AGENTS_CACHE", str(tmp_path))
    code, out, err = s3("demo", "--trained", "--seed", "1")
    assert code == 0, err[-3000:]
    assert f"the shipped {DEFAULT_SEARCHER} searcher" in out and "searcher, generation 1" in out
    assert "invalid action" not in out and "gold:" in out
    assert "Loading weights" not in err and "it/s]" not in err    # no library loading bars
    assert os.path.isdir(tmp_path / f"{trained_world()}-index")          # the corpus's index, built once


def test_s3_search_trained_runs_the_shipped_searcher_on_llama_cpp(tmp_path, capsys) -> None:
    import json

    from s3_agents.worlds import default_world_dir, load_world
    from tests.conftest import run_main

    code, out, err = run_main(capsys, "index", "build", str(default_world_dir() / "corpus.jsonl"),
                              str(tmp_path / "idx"), "--embedder", "hashing")    # fast: the searcher is on trial
    assert code == 0, err
    question = load_world(default_world_dir()).sample("test", 1)[0]["question"]
    code, out, err = run_main(capsys, "search", question, "--searcher", "world", "--index", str(tmp_path / "idx"),
                              "--no-answer", "--json")
    assert code == 0, err
    state = json.loads(out)
    assert state["invalid"] == 0 and state["outputs"] and state["context"]
    code, _, err = run_main(capsys, "search", question, "--trained", "--policy-hf", "x")
    assert code == 2 and "drop --policy-hf" in err
    code, _, err = run_main(capsys, "search", question, "--searcher", "qwen")
    assert code == 2 and "--searcher must be one of real, world" in err
