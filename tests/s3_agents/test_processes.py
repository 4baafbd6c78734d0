"""s3_agents.processes: the one way a server subprocess is started, waited for and stopped."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from s3_agents.processes import ServerStartError, free_port, stop_process, wait_healthy


def test_waits_for_a_real_server_then_stops_it() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/", timeout=60, interval=0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        stop_process(proc)
    assert proc.returncode is not None
    stop_process(proc)                                   # idempotent


def test_a_server_that_exits_is_reported_with_its_exit_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ServerStartError, match="exited with 3"):
        wait_healthy(proc, f"http://127.0.0.1:{free_port()}/health", timeout=60, interval=0.05)


def test_a_server_that_never_answers_is_stopped_after_the_timeout() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(ServerStartError, match="did not answer in 0.5 s"):
        wait_healthy(proc, f"http://127.0.0.1:{free_port()}/health", timeout=0.5, interval=0.05)
    assert proc.poll() is not None                       # not left running


def test_stop_kills_a_process_that_ignores_terminate() -> None:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True);"
                             " time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()        # the handler is installed
    stop_process(proc, grace=0.5)
    assert proc.returncode == -9
