"""Kill `s3 index build` mid-way: the previous index (or none) stays loadable, and a rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from s3_agents.corpus import write_corpus
from s3_agents.errors import IndexNotFoundError
from s3_agents.retrievers import load_retriever
from s3_agents.types import Passage
from tests.conftest import REPO, cli_env, run_cli, run_main, s3_command

pytestmark = pytest.mark.slow

COPIES = 3


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory, demo_corpus) -> Path:
    """The demo corpus 3 times over with fresh ids: long enough to kill a build mid-way."""
    passages = [Passage(f"{r}-{p.id}", p.title, f"{p.text} (copy {r})")
                for r in range(COPIES) for p in demo_corpus.passages]
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    write_corpus(passages, path)
    return path


def kill_when_chunks_saved(corpus: Path, out: Path, *, chunks: int = 2, timeout: float = 180) -> None:
    proc = subprocess.Popen(
        s3_command("index", "build", str(corpus), str(out), "--chunk-size", "128", "--quiet"),
        env=cli_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(list((out / ".partial").glob("chunk-*.npy"))) >= chunks:
                proc.send_signal(signal.SIGKILL)
                break
            assert proc.poll() is None, f"build finished before it could be killed:\n{proc.stdout.read()}"
            time.sleep(0.05)
        else:
            pytest.fail("no embedding chunk was saved in time")
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_killed_first_build_leaves_no_index(tmp_path: Path, big_corpus: Path, capsys) -> None:
    out = tmp_path / "idx"
    kill_when_chunks_saved(big_corpus, out)
    with pytest.raises(IndexNotFoundError, match="interrupted build"):
        load_retriever(out)
    result = run_main(capsys, "retrieve", "--index", str(out), "anything")
    assert result.code == 1
    assert "no complete index" in result.err and "resume" in result.err


def test_killed_rebuild_keeps_previous_index_then_resumes(tmp_path: Path, big_corpus: Path, demo_corpus,
                                                          capsys) -> None:
    out = tmp_path / "idx"
    small = tmp_path / "small.jsonl"
    write_corpus(demo_corpus.passages[:40], small)
    assert run_main(capsys, "index", "build", str(small), str(out), "--embedder", "hashing", "--quiet").code == 0

    kill_when_chunks_saved(big_corpus, out, chunks=3)
    previous = load_retriever(out)
    assert len(previous) == 40
    assert previous.search([demo_corpus.passages[0].contents], k=1)[0][0].id == demo_corpus.passages[0].id

    resumed = run_cli("index", "build", str(big_corpus), str(out), "--chunk-size", "128", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr                     # the CLI's log line, on a user's stderr
    assert len(load_retriever(out)) == COPIES * len(demo_corpus)
    assert not (out / ".partial").exists()
