"""Server subprocesses: a free loopback port, waiting until a server answers, stopping it.

One home for what the llama.cpp runner (:class:`s3_agents.llm.LocalLlamaServer`), the tests' server fixtures and the
benchmarks' servers all do.
"""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

__all__ = ["ServerStartError", "free_port", "stop_process", "wait_healthy"]


class ServerStartError(RuntimeError):
    """A server subprocess exited, or did not answer its health URL in time (it has been stopped)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, *, grace: float = 15) -> None:
    """Terminate ``proc``, kill it after ``grace`` seconds, and reap it (idempotent)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(proc: subprocess.Popen, url: str, *, timeout: float = 120, interval: float = 0.2) -> None:
    """Poll ``url`` until it answers 200 while ``proc`` runs.

    Args:
        proc: The server's process.
        url: Its health URL (``/health``, ``/v1/models``).
        timeout: Seconds to wait.
        interval: Seconds between attempts.

    Raises:
        ServerStartError: ``proc`` exited (the message has its exit code), or ``url`` did not answer 200 within
            ``timeout`` (``proc`` is then stopped).

    Example:
        >>> proc = subprocess.Popen(["python", "-m", "http.server", str(port := free_port()),
        ...                          "--bind", "127.0.0.1"])                                      # doctest: +SKIP
        >>> wait_healthy(proc, f"http://127.0.0.1:{port}/")                                      # doctest: +SKIP
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"the server for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(interval)
    stop_process(proc)
    raise ServerStartError(f"{url} did not answer in {timeout:g} s")
