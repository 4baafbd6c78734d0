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
from s3_agents.locks import hold_lock
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
