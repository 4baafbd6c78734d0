"""The graph drawings in the README and docs are the graph the code builds."""

from __future__ import annotations

import pytest

from s3_agents.graph import build_search_graph
from tests.conftest import REPO


@pytest.mark.parametrize("doc", ["README.md", "docs/searcher.md"])
def test_graph_drawing_is_current(doc: str) -> None:
    mermaid = build_search_graph().get_graph().draw_mermaid().strip()
    assert mermaid in (REPO / doc).read_text(encoding="utf-8"), (
        f"{doc} shows an outdated graph; paste build_search_graph().get_graph().draw_mermaid()")


def test_benchmark_doc_has_every_section_with_its_command() -> None:
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in ("retrieval", "server_load", "rollouts"):
        assert f"<!-- {name}:start -->" in text and f"Command: `python benchmarks/{name}.py`" in text
