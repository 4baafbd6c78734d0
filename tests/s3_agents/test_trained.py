"""The trained searcher shipped in the package: it loads, searches under its grammar, and runs in `s3 demo`."""

from __future__ import annotations

import os

import pytest

from s3_agents.trained import trained_config, trained_searcher_dir, trained_searcher_info
from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow


def test_shipped_adapter_is_small_and_documented() -> None:
    info = trained_searcher_info()
    assert info["stage"] in ("warmstart", "ppo") and info["command"]
    weights = trained_searcher_dir() / "adapter_model.safetensors"
    assert weights.stat().st_size < 12_000_000                  # an adapter, not a model
    config = trained_config()
    assert config.constrained and config.max_context_docs == info["config"]["max_context_docs"]


def test_s3_demo_trained_searches_with_the_shipped_searcher(tmp_path) -> None:
    import subprocess
    import sys

    env = cli_env() | {"S3_AGENTS_CACHE": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "s3_agents", "demo", "--trained", "--seed", "1"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "the shipped searcher" in out and "search 1:" in out          # it ran a search of its own
    assert "invalid action" not in out and "gold:" in out
    assert os.path.isdir(tmp_path / "world-index")                     # the world's index, built once


def test_s3_search_trained_runs_the_shipped_searcher_on_llama_cpp(tmp_path, capsys) -> None:
    import json

    from s3_agents.world import default_world_dir, load_world
    from tests.conftest import run_main

    code, out, err = run_main(capsys, "index", "build", str(default_world_dir() / "corpus.jsonl"),
                              str(tmp_path / "idx"), "--embedder", "hashing")    # fast: the searcher is on trial
    assert code == 0, err
    question = load_world(default_world_dir()).sample("test", 1)[0]["question"]
    code, out, err = run_main(capsys, "search", question, "--trained", "--index", str(tmp_path / "idx"),
                              "--no-answer", "--json")
    assert code == 0, err
    state = json.loads(out)
    assert state["invalid"] == 0 and state["outputs"] and state["context"]
    code, _, err = run_main(capsys, "search", question, "--trained", "--policy-hf", "x")
    assert code == 2 and "drop --policy-hf" in err
