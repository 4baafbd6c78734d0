"""Failures outside the caller's control raise S3Error subclasses (that stay the built-in kind they were)."""

from __future__ import annotations

import httpx
import pytest

from s3_agents import build_index, load_demo_corpus
from s3_agents.errors import (
    BusyError,
    IndexFormatError,
    RetrieverError,
    RetrieverRefusedError,
    RetrieverUnavailableError,
    S3Error,
)
from s3_agents.locks import atomic_path, hold_lock, write_atomic
from s3_agents.retrievers import FaissRetriever, RemoteRetriever


def test_a_held_lock_is_a_busy_error_naming_the_holder(tmp_path) -> None:
    first = hold_lock(tmp_path / "x.lock", "another run is writing x", "wait for it")
    try:
        with pytest.raises(BusyError, match=r"another run is writing x \(pid \d+\); wait for it") as info:
            hold_lock(tmp_path / "x.lock", "another run is writing x", "wait for it")
        assert isinstance(info.value, S3Error) and isinstance(info.value, RuntimeError)
    finally:
        first.close()
    hold_lock(tmp_path / "x.lock", "busy").close()  # released with its handle


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    out = tmp_path / "rows.jsonl"
    write_atomic(out, b"old\n")
    with pytest.raises(ValueError, match="half way"), atomic_path(out) as tmp:
        tmp.write_text("new, half")
        raise ValueError("half way")
    assert out.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    with atomic_path(out) as tmp:
        tmp.write_text("new\n")
    assert out.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_an_index_of_another_kind_is_an_index_format_error(tmp_path) -> None:
    build_index(load_demo_corpus().passages[:20], tmp_path / "bm25", backend="bm25", show_progress=False)
    with pytest.raises(IndexFormatError, match="holds a 'bm25' index, not a FAISS one") as info:
        FaissRetriever.load(tmp_path / "bm25")
    assert isinstance(info.value, S3Error) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(("status", "body", "error"), [
    (404, "not here", RetrieverRefusedError),
    (503, "down", RetrieverUnavailableError),
    (200, "not json", RetrieverError),
])
def test_health_never_lets_an_http_library_error_through(status: int, body: str, error: type) -> None:
    remote = RemoteRetriever("http://127.0.0.1:9/retrieve")
    remote._client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, text=body)))
    with pytest.raises(error, match="127.0.0.1:9/health"):
        remote.health()


def test_data_problems_are_data_errors(tmp_path) -> None:
    from s3_agents.errors import DataError, DataFileError
    from s3_agents.evaluation import NaiveRAG, evaluate
    from s3_agents.qa import QAExample, load_qa

    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"]}\n[1]\n{"question": "no answers"}\n')
    with pytest.raises(DataFileError, match=r"qa.jsonl, line 2: not a JSON object; line 3: needs non-empty") as info:
        load_qa(bad)
    assert info.value.line_no == 2 and isinstance(info.value, ValueError)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no questions"):
        load_qa(empty)
    for backend in ("bm25", "faiss"):
        with pytest.raises(DataError, match="empty corpus"):
            build_index([], tmp_path / backend, backend=backend, show_progress=False)
    twice = [QAExample("q?", ("a",), id="1"), QAExample("r?", ("b",), id="1")]
    with pytest.raises(DataError, match=r"duplicate id\(s\) \['1'\]"):
        import asyncio

        asyncio.run(evaluate([NaiveRAG(None, None)], {"d": twice}, tmp_path / "r.jsonl"))


def test_asking_for_a_missing_gpu_is_a_no_gpu_error() -> None:
    from s3_agents.errors import NoGPUError
    from s3_agents.retrievers.faiss import gpu_count

    if gpu_count():
        pytest.skip("FAISS sees a GPU here")
    corpus = load_demo_corpus().passages[:20]
    from s3_agents.embedders import HashingEmbedder

    with pytest.raises(NoGPUError, match="FAISS sees no GPU") as info:
        FaissRetriever.from_passages(corpus, HashingEmbedder(), gpu=True)
    assert isinstance(info.value, RuntimeError)


def test_cli_prints_world_failures_uses_usage_errors_for_options_and_lets_bugs_through(
        tmp_path, monkeypatch, capsys) -> None:
    from s3_agents.cli.application import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"]}\n{"question": "no answers"}\n')
    for debug in ([], ["--debug"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*debug, "precompute", str(bad), "--cache", str(tmp_path / "c.sqlite")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and f"error: {bad}, line 2: needs non-empty" in err
        assert ("Traceback" in err) is bool(debug)
    for args, hint in ((["retrieve", "q", "--url", "localhost:3000"], "--url"),
                       (["retrieve", "q", "--embedder", "hashing:wide"], "--embedder"),
                       (["search", "q", "--config", "8-9-3"], "--config")):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and hint in err and "Traceback" not in err, (args, err)

    def bug(*args, **kwargs):
        raise ValueError("an unexpected bug")

    monkeypatch.setattr("s3_agents.cli.searching.RetrieverOptions.open", bug)
    with pytest.raises(ValueError, match="an unexpected bug"):  # not swallowed into one line
        main(["retrieve", "q"])
