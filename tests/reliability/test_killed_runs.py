"""kill -9 in the middle of `s3 eval` and `s3 precompute`, then the same command again: it resumes,
keeps what the killed run wrote, and ends with every row exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, run_main, s3_command

pytestmark = pytest.mark.slow

N = 4


def kill_when(args: list[str], ready: Callable[[], bool], *, timeout: float = 240) -> None:
    """Start ``s3 <args>``, SIGKILL it once ``ready()`` holds (it must still be running)."""
    proc = subprocess.Popen(s3_command(*args), env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"finished before it could be killed:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "nothing written in time"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().decode("utf-8", "replace").splitlines()
            if line.strip().endswith("}")] if path.is_file() else []


def test_killed_eval_resumes_without_loss_or_duplicates(llama_server, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    results = out / "results.jsonl"
    args = ["eval", "--methods", "naive-rag", "--generator-url", llama_server.url, "--generator-model",
            llama_server.model, "--no-judge", "--limit", str(N), "--concurrency", "1", "--out", str(out)]
    kill_when(args, lambda: len(rows(results)) >= 1)
    before = rows(results)
    assert 1 <= len(before) < N
    done = run_main(capsys, *args)                   # the same command again (in this process: no start-up)
    assert done.code == 0, done.out[-2000:] + done.err[-2000:]
    after = rows(results)
    keys = [(r["method"], r["dataset"], r["id"]) for r in after]
    assert len(keys) == len(set(keys)) == N
    kept = {(r["method"], r["dataset"], r["id"]): r["answer"] for r in after}
    assert all(kept[(r["method"], r["dataset"], r["id"])] == r["answer"] for r in before)


def test_killed_precompute_resumes_without_loss_or_duplicates(llama_server, demo_questions, tmp_path: Path,
                                                              capsys) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": q.question, "answers": list(q.answers)}) + "\n"
                                 for q in demo_questions[:N]))
    cache = tmp_path / "rag.sqlite"
    args = ["precompute", str(questions), "--cache", str(cache), "--generator-url", llama_server.url,
            "--generator-model", llama_server.model, "--concurrency", "1"]

    def stored() -> int:
        if not cache.is_file():
            return 0
        try:
            with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=1) as db:
                return db.execute("SELECT COUNT(*) FROM rag").fetchone()[0]
        except sqlite3.Error:
            return 0

    kill_when(args, lambda: stored() >= 1)
    kept = stored()
    assert 1 <= kept < N
    done = run_main(capsys, *args)
    assert done.code == 0, done.out[-2000:] + done.err[-2000:]
    assert f"{N - kept} computed, {kept} already cached, {N} rows" in done.out
    assert stored() == N
