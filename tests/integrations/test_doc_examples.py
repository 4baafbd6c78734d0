"""Every Python block of docs/integrations.md runs as written, in order, against a llama.cpp server."""

from __future__ import annotations

import os
import re

import pytest

from s3_agents import build_index, load_demo_corpus
from tests.conftest import REPO

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "integrations.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_examples_are_short() -> None:
    assert len(blocks()) >= 5
    for block in blocks():
        assert len(block.strip().splitlines()) <= 10, block


def test_examples_run_as_written(llama_server, minilm, tmp_path, monkeypatch) -> None:
    build_index(load_demo_corpus().passages, tmp_path / "my-index", embedder=minilm, show_progress=False)
    monkeypatch.chdir(tmp_path)
    namespace = {"LLM_URL": llama_server.url}
    for block in blocks():
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    response, step = namespace["response"], namespace["step"]
    assert str(response).strip() and response.source_nodes
    assert all(node.node.metadata["queries"] is not None for node in response.source_nodes)   # the searcher's nodes
    assert list(step) == ["generate"] and step["generate"]["answer"]          # the graph streamed its answer last
    assert namespace["docs"] and namespace["found"]["passages"]                # `s3 mcp` over stdio, a subprocess
    titles = {p.id: p.title for p in load_demo_corpus().passages}
    assert all(titles[p["id"]] == p["title"] for p in namespace["found"]["passages"])
    assert os.getcwd() == str(tmp_path)


def test_readme_integration_examples_are_the_tested_ones() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    names = ("llama_index.retrievers.s3", "langchain_s3", "build_rag_graph")
    shown = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if any(n in b for n in names)]
    assert len(shown) == 3 and all(block in blocks() for block in shown)
