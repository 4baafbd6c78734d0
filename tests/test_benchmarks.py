"""Smoke runs of the benchmark scripts at tiny sizes, so they keep working. No speed is asserted here."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, f"benchmarks/{script}", "--quick", "--no-write"], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=600)


def test_retrieval_benchmark_runs() -> None:
    result = run("retrieval.py")
    assert result.returncode == 0, result.stderr
    for heading in ("FAISS wrapper overhead", "Approximate indexes vs flat", "Qdrant local", "BM25 (bm25s)"):
        assert heading in result.stdout


def test_server_load_benchmark_runs_without_errors() -> None:
    result = run("server_load.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Errors in total: **0**" in result.stdout
    assert "Goal: p99 under load at most 5x p99 alone, for every hostile shape" in result.stdout
    assert "512 empty queries" in result.stdout


def test_rollouts_benchmark_runs() -> None:
    result = run("rollouts.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "sequential `search` loop" in result.stdout and "the graph itself" in result.stdout


def test_training_cpu_benchmark_runs() -> None:
    result = run("training_cpu.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "agent loop / plain searcher" in result.stdout and "CpuPPO.step" in result.stdout


def test_constrained_benchmark_runs() -> None:
    result = run("constrained.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "| free |" in result.stdout and "| grammar | 0/" in result.stdout     # no invalid turn under the grammar


def test_embed_benchmark_runs() -> None:
    result = run("embed.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "s3 index build (flat, resumable, atomic)" in result.stdout and "Goal: build >= 0.9x raw" in result.stdout


def test_scale_benchmark_runs() -> None:
    result = run("scale.py")
    assert result.returncode == 0, result.stderr + result.stdout
    for words in ("| flat | `Flat` |", "| edge-hnsw |", "ivfpq-rflat", "A compressed index at recall@10 >= 0.9",
                  "Qdrant Edge HNSW vs FAISS HNSW"):
        assert words in result.stdout


def test_train_throughput_benchmark_runs(tmp_path) -> None:
    result = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--quick", "--out", str(tmp_path)],
                            cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    for row in ("| today | transformers |", "| llama.cpp | llama.cpp |", "| llama.cpp-grpo | llama.cpp |"):
        assert row in result.stdout
    assert "Episodes per hour, llama.cpp / today" in result.stdout and "s/question" in result.stdout


def test_train_real_keeps_rows_without_passage_text_and_seeds_a_fresh_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_real

    row = {"method": "naive-rag", "id": "q1", "extra": {"trace": [{"passages": ["7"]}], "passages": {"7": ["T", "x"]}}}
    results = tmp_path / "run" / "eval-test" / "fill" / "results.jsonl"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(row) + '\n{"method": "s3", "id": "q1", "ext')      # a row still being written
    monkeypatch.setattr(train_real, "KEPT", tmp_path / "kept")
    kept = tmp_path / "kept" / "eval-test-fill.jsonl"
    assert train_real.keep_rows(results, kept) == 1
    assert json.loads(kept.read_text()) == {"method": "naive-rag", "id": "q1",
                                            "extra": {"trace": [{"passages": ["7"]}]}}
    fresh = argparse.Namespace(out=tmp_path / "fresh", quick=False)
    seeded = train_real._results(fresh, "eval-test/fill")
    assert seeded == tmp_path / "fresh" / "eval-test" / "fill" / "results.jsonl"
    assert seeded.read_text() == kept.read_text()
    assert not train_real._results(argparse.Namespace(out=tmp_path / "quick", quick=True), "eval-test/fill").exists()
