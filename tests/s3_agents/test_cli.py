"""The `s3` command line, run in-process through its `main` (only `s3 serve` runs as the user starts it)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from s3_agents.corpus import demo_corpus_path

pytestmark = pytest.mark.slow


def test_help_lists_the_commands(s3) -> None:
    code, out, _ = s3("--help")
    assert code == 0
    for word in ("serve", "retrieve", "index", "corpus"):
        assert word in out
    build_help = s3("index", "build", "--help")[1]
    assert "--backend" in build_help and "--index-type" in build_help and "--skip-bad-lines" in build_help


def test_build_serve_curl(s3, tmp_path: Path, start_server) -> None:
    """The issue's acceptance flow: `s3 index build`, `s3 serve` (a real process), then POST /retrieve."""
    out = tmp_path / "idx"
    code, stdout, err = s3("index", "build", str(demo_corpus_path()), str(out), "--index-type", "hnsw", "--quiet")
    assert code == 0, err
    assert "built faiss index of 270 passages" in stdout
    info = json.loads(s3("index", "info", str(out))[1])
    assert info["index_type"] == "hnsw" and info["embedder"] == "minilm"
    server = start_server("--index", str(out))
    health = httpx.get(f"{server.url}/health").json()
    assert health["index"] == "idx" and str(tmp_path) not in json.dumps(health)
    reply = httpx.post(f"{server.url}/retrieve",
                       json={"queries": ["Which river flows through Gritia?"], "topk": 3, "return_scores": True})
    hit = reply.json()["result"][0][0]
    assert hit["document"]["contents"].startswith('"Gritia"\n') and hit["score"] > 0
    code, stdout, _ = s3("retrieve", "--url", server.url, "-k", "2", "Which river flows through Gritia?")
    assert code == 0 and "Gritia" in stdout


@pytest.mark.parametrize("backend", ["bm25", "qdrant"])
def test_other_backends_build_and_retrieve(s3, tmp_path: Path, backend: str) -> None:
    out = tmp_path / backend
    extra = ["--embedder", "hashing"] if backend == "qdrant" else []
    code, _, err = s3("index", "build", str(demo_corpus_path()), str(out), "--backend", backend, "--quiet", *extra)
    assert code == 0, err
    payload = json.loads(s3("retrieve", "--index", str(out), "--json", "-k", "2", "currency of Ketroul")[1])
    assert len(payload["result"][0]) == 2
    assert "Ketroul" in payload["result"][0][0]["document"]["contents"]


def test_bad_corpus_lines_are_reported_with_numbers(s3, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "1", "contents": "\\"A\\"\\nok"}\n{oops\n{"id": "2", "text": "fine"}\n{"id": "3"}\n')
    code, _, err = s3("index", "build", str(corpus), str(tmp_path / "i"), "--backend", "bm25")
    assert code == 1
    assert f"error: {corpus}, line 2: invalid JSON" in err and "--skip-bad-lines" in err
    assert not (tmp_path / "i").exists()
    code, out, _ = s3("index", "build", str(corpus), str(tmp_path / "i"), "--backend", "bm25", "--skip-bad-lines")
    assert code == 0
    assert "built bm25 index of 2 passages" in out and "skipped 2 bad line(s)" in out
    code, out, _ = s3("corpus", "check", str(corpus))
    assert code == 1
    assert "line 2: invalid JSON" in out and "line 4:" in out


def test_clear_messages_for_missing_files_and_wrong_options(s3, tmp_path: Path) -> None:
    cases = [
        (("index", "build", str(tmp_path / "nope.jsonl"), str(tmp_path / "i")), 1, "corpus file not found"),
        (("index", "build", str(demo_corpus_path()), str(tmp_path / "i"), "--backend", "elastic"), 2, "elastic"),
        (("retrieve", "--index", str(tmp_path / "none"), "q"), 1, "no complete index"),
        (("retrieve", "--index", "a", "--url", "http://x", "q"), 2, "not both"),
    ]
    for args, want, words in cases:
        code, _, err = s3(*args)
        assert code == want and words in err, (args, err)


def test_corpus_demo_export(s3, tmp_path: Path) -> None:
    assert s3("corpus", "demo", str(tmp_path))[0] == 0
    assert (tmp_path / "demo_corpus.jsonl").read_bytes() == demo_corpus_path().read_bytes()
    assert s3("corpus", "check", str(tmp_path / "demo_corpus.jsonl"))[1].startswith("270 passages")


def test_search_commands_explain_wrong_options(s3, tmp_path: Path) -> None:
    cases = [
        (("search", "q", "--policy-model", "m"), 2, "--policy-model needs --policy-url"),
        (("search", "q", "--policy-url", "http://127.0.0.1:9/v1"), 2, "--policy-model is required"),
        (("search", "q", "--policy-gguf", str(tmp_path / "none.gguf")), 1, "GGUF model file not found"),
        (("search", "q", "--config", "eight"), 2, "'8-3-3'"),
        (("demo", "--question", "q", "--question-id", "q1"), 2, "not both"),
        (("precompute", str(tmp_path / "missing.jsonl")), 1, "QA file not found"),
    ]
    for args, want, words in cases:
        code, _, err = s3(*args)
        assert code == want and words in err, (args, err)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"]}\n{"question": "no answers"}\n')
    code, _, err = s3("precompute", str(bad), "--cache", str(tmp_path / "c.sqlite"))
    assert code == 1 and "bad.jsonl" in err and "line 2: needs non-empty" in err


def test_data_world_writes_a_world(s3, tmp_path) -> None:
    code, out, err = s3("data", "world", str(tmp_path / "w"), "--passages", "300", "--seed", "2")
    assert code == 0, err
    for name in ("corpus.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "world.json"):
        assert (tmp_path / "w" / name).is_file()
    assert "300 passages" in out
    assert s3("data", "world", str(tmp_path / "x"), "--passages", "20")[0] == 2 and not (tmp_path / "x").exists()


def test_train_local_and_warmstart_have_help(s3) -> None:
    for command in ("local", "warmstart"):
        code, out, err = s3("train", command, "--help")
        assert code == 0, err
        assert "--out" in out and "--device" in out
