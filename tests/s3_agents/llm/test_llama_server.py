"""LocalLlamaServer: llama.cpp's OpenAI-compatible server in a subprocess."""

from __future__ import annotations

import httpx
import pytest

from s3_agents.errors import LLMUnavailableError
from s3_agents.llm import LocalLlamaServer, OpenAICompatClient, find_llama_server


@pytest.mark.slow
def test_serves_smollm2_and_stops():
    with LocalLlamaServer(n_ctx=2048) as server:
        client = OpenAICompatClient(server.url, server.alias)
        client.check()
        assert client.chat([{"role": "user", "content": "Say hi"}], max_tokens=8).completion_tokens > 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/models", timeout=2)
    server.stop()                                    # idempotent


def test_a_bad_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(LLMUnavailableError, match="exited"):
        LocalLlamaServer(bad, startup_timeout=60)


def test_parallel_slots_need_llama_server(tmp_path, monkeypatch):
    monkeypatch.delenv("S3_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))                       # no llama-server on it
    assert find_llama_server() is None
    with pytest.raises(ValueError, match="build_llama_server.sh"):
        LocalLlamaServer(parallel=4)
    with pytest.raises(ValueError, match="does not exist"):
        LocalLlamaServer(parallel=4, binary=tmp_path / "missing" / "llama-server")
    with pytest.raises(ValueError, match="at least 1"):
        LocalLlamaServer(parallel=0)
    monkeypatch.setenv("S3_LLAMA_SERVER", str(tmp_path / "llama-server"))
    assert find_llama_server() == tmp_path / "llama-server"


@pytest.mark.slow
@pytest.mark.skipif(find_llama_server() is None,
                    reason="no llama-server ($S3_LLAMA_SERVER; scripts/build_llama_server.sh)")
def test_llama_server_answers_requests_together_on_parallel_slots():
    import asyncio

    with LocalLlamaServer(n_ctx=1024, parallel=2) as server:
        client = OpenAICompatClient(server.url, server.alias)

        async def both():
            return await asyncio.gather(*(client.achat([{"role": "user", "content": f"Say {w}"}], max_tokens=8)
                                          for w in ("hi", "bye")))

        replies = asyncio.run(both())
        assert all(r.completion_tokens > 0 for r in replies)
        root = server.url.removesuffix("/v1")
        assert httpx.get(root + "/props", timeout=5).json()["total_slots"] == 2
        assert [slot["n_ctx"] for slot in httpx.get(root + "/slots", timeout=5).json()] == [1024, 1024]
