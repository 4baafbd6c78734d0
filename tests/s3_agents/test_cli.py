"""The `s3` command line, run as a subprocess like a user would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from s3_agents.corpus import demo_corpus_path
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("serve", "retrieve", "index", "corpus"):
        assert word in result.stdout
    build_help = run_cli("index", "build", "--help").stdout
    assert "--backend" in build_help and "--index-type" in build_help and "--skip-bad-lines" in build_help


def test_build_serve_curl(tmp_path: Path, start_server) -> None:
    """The issue's acceptance flow: `s3 index build`, `s3 serve`, then POST /retrieve."""
    out = tmp_path / "idx"
    build = run_cli("index", "build", str(demo_corpus_path()), str(out), "--index-type", "hnsw", "--quiet")
    assert build.returncode == 0, build.stderr
    assert "built faiss index of 270 passages" in build.stdout
    info = json.loads(run_cli("index", "info", str(out)).stdout)
    assert info["index_type"] == "hnsw" and info["embedder"] == "minilm"
    server = start_server("--index", str(out))
    reply = httpx.post(f"{server.url}/retrieve",
                       json={"queries": ["Which river flows through Gritia?"], "topk": 3, "return_scores": True})
    hit = reply.json()["result"][0][0]
    assert hit["document"]["contents"].startswith('"Gritia"\n') and hit["score"] > 0
    remote = run_cli("retrieve", "--url", server.url, "-k", "2", "Which river flows through Gritia?")
    assert remote.returncode == 0 and "Gritia" in remote.stdout


@pytest.mark.parametrize("backend", ["bm25", "qdrant"])
def test_other_backends_build_and_retrieve(tmp_path: Path, backend: str) -> None:
    out = tmp_path / backend
    extra = ["--embedder", "hashing"] if backend == "qdrant" else []
    build = run_cli("index", "build", str(demo_corpus_path()), str(out), "--backend", backend, "--quiet", *extra)
    assert build.returncode == 0, build.stderr
    result = run_cli("retrieve", "--index", str(out), "--json", "-k", "2", "currency of Ketroul")
    payload = json.loads(result.stdout)
    assert len(payload["result"][0]) == 2
    assert "Ketroul" in payload["result"][0][0]["document"]["contents"]


def test_bad_corpus_lines_are_reported_with_numbers(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "1", "contents": "\\"A\\"\\nok"}\n{oops\n{"id": "2", "text": "fine"}\n{"id": "3"}\n')
    strict = run_cli("index", "build", str(corpus), str(tmp_path / "i"), "--backend", "bm25")
    assert strict.returncode == 1
    assert f"error: {corpus}, line 2: invalid JSON" in strict.stderr and "--skip-bad-lines" in strict.stderr
    assert not (tmp_path / "i").exists()
    lenient = run_cli("index", "build", str(corpus), str(tmp_path / "i"), "--backend", "bm25", "--skip-bad-lines")
    assert lenient.returncode == 0
    assert "built bm25 index of 2 passages" in lenient.stdout and "skipped 2 bad line(s)" in lenient.stdout
    check = run_cli("corpus", "check", str(corpus))
    assert check.returncode == 1
    assert "line 2: invalid JSON" in check.stdout and "line 4:" in check.stdout


def test_clear_messages_for_missing_files_and_wrong_options(tmp_path: Path) -> None:
    missing = run_cli("index", "build", str(tmp_path / "nope.jsonl"), str(tmp_path / "i"))
    assert missing.returncode == 1 and "corpus file not found" in missing.stderr
    wrong = run_cli("index", "build", str(demo_corpus_path()), str(tmp_path / "i"), "--backend", "elastic")
    assert wrong.returncode == 2 and "elastic" in wrong.stderr
    no_index = run_cli("retrieve", "--index", str(tmp_path / "none"), "q")
    assert no_index.returncode == 1 and "no complete index" in no_index.stderr
    both = run_cli("retrieve", "--index", "a", "--url", "http://x", "q")
    assert both.returncode == 2 and "not both" in both.stderr


def test_corpus_demo_export(tmp_path: Path) -> None:
    result = run_cli("corpus", "demo", str(tmp_path))
    assert result.returncode == 0
    assert (tmp_path / "demo_corpus.jsonl").read_bytes() == demo_corpus_path().read_bytes()
    assert run_cli("corpus", "check", str(tmp_path / "demo_corpus.jsonl")).stdout.startswith("270 passages")


def test_search_commands_explain_wrong_options(tmp_path: Path) -> None:
    cases = [
        (("search", "q", "--policy-model", "m"), 2, "--policy-model needs --policy-url"),
        (("search", "q", "--policy-url", "http://127.0.0.1:9/v1"), 2, "--policy-model is required"),
        (("search", "q", "--policy-gguf", str(tmp_path / "none.gguf")), 1, "GGUF model file not found"),
        (("search", "q", "--config", "eight"), 2, "'8-3-3'"),
        (("demo", "--question", "q", "--question-id", "q1"), 2, "not both"),
        (("precompute", str(tmp_path / "missing.jsonl")), 1, "QA file not found"),
    ]
    for args, code, words in cases:
        result = run_cli(*args)
        assert result.returncode == code and words in result.stderr, (args, result.stderr)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"]}\n{"question": "no answers"}\n')
    result = run_cli("precompute", str(bad), "--cache", str(tmp_path / "c.sqlite"))
    assert result.returncode == 1 and "bad.jsonl" in result.stderr and "line 2: needs non-empty" in result.stderr


def test_data_world_writes_a_world(tmp_path) -> None:
    result = run_cli("data", "world", str(tmp_path / "w"), "--passages", "300", "--seed", "2")
    assert result.returncode == 0, result.stderr
    for name in ("corpus.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "world.json"):
        assert (tmp_path / "w" / name).is_file()
    assert "300 passages" in result.stdout
    bad = run_cli("data", "world", str(tmp_path / "x"), "--passages", "20")
    assert bad.returncode == 2 and not (tmp_path / "x").exists()


def test_train_local_and_warmstart_have_help() -> None:
    for command in ("local", "warmstart"):
        result = run_cli("train", command, "--help")
        assert result.returncode == 0, result.stderr
        assert "--out" in result.stdout and "--device" in result.stdout
