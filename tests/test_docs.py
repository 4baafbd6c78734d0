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
    for name, script in (("retrieval", "retrieval"), ("server_load", "server_load"), ("rollouts", "rollouts"),
                         ("training_cpu", "training_cpu"), ("constrained", "constrained"),
                         ("server_fairness", "server_load"), ("embed", "embed"), ("scale-1000000x384", "scale"),
                         ("server_load_scale", "server_load"), ("train_throughput", "train_throughput"),
                         ("train_throughput_generator", "train_throughput"), ("ppo_vs_grpo", "ppo_vs_grpo")):
        assert f"<!-- {name}:start -->" in text and f"Command: `python benchmarks/{script}.py" in text
    # The recorded training run names its options (paths, steps, evaluation size).
    assert "<!-- train-local:start -->" in text and "Command: `python benchmarks/train_local.py --" in text


def _shell_commands(doc: str) -> list[str]:
    """The ``s3 ...`` commands of a doc's bash blocks, continuation lines joined."""
    text = (REPO / doc).read_text(encoding="utf-8")
    commands = []
    for block in text.split("```bash")[1:]:
        joined = block.split("```")[0].replace("\\\n", " ")
        commands += [line.strip().rstrip("&").strip() for line in joined.splitlines() if line.strip().startswith("s3 ")]
    return commands


@pytest.mark.parametrize("doc", ["docs/training.md", "docs/evaluation.md", "docs/retrieval.md", "docs/searcher.md",
                                 "README.md"])
def test_documented_cli_commands_use_real_options(doc: str) -> None:
    """Every `s3 ...` command shown in the doc names a real sub-command, and each --option exists there."""
    from typer.testing import CliRunner

    from s3_agents.cli import app

    commands = _shell_commands(doc)
    assert commands, f"{doc} shows no s3 command"
    runner = CliRunner()
    for command in commands:
        words = command.split()[1:]
        path = [w for w in words[:2] if not w.startswith("-") and w in {"index", "train", "corpus", "data"}]
        sub = words[:len(path) + 1]
        result = runner.invoke(app, [*sub, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
        assert result.exit_code == 0, f"{command}: {result.output}"
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in result.output, f"{doc}: `{' '.join(sub)}` has no {option}"


def test_evaluation_doc_shows_the_prompts_the_code_sends() -> None:
    from s3_agents.evaluation import METHOD_NAMES, methods

    text = (REPO / "docs" / "evaluation.md").read_text(encoding="utf-8")
    for name in ("_REWRITE_PROMPT", "_IRCOT_PROMPT", "_SEARCH_R1_PROMPT"):
        assert getattr(methods, name).strip() in text, f"docs/evaluation.md shows an outdated {name}"
    for name in METHOD_NAMES:
        assert f"| `{name}` |" in text, f"docs/evaluation.md does not describe {name}"


def test_recorded_training_run_summary_matches_the_doc() -> None:
    """docs/train-local/summary.json holds the equal-budget table, and training.md shows those numbers."""
    import json

    summary = json.loads((REPO / "docs" / "train-local" / "summary.json").read_text(encoding="utf-8"))
    doc = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    assert list(summary["methods"]) == ["naive-rag", "untrained", "warmstart", "ppo"]
    for entry in summary["methods"].values():
        assert {"genacc", "answer_in_context", "context_docs", "n"} <= set(entry) and entry["n"] >= 100
        low, high = entry["genacc_ci"]
        assert f"{entry['genacc']:.1f} [{low:.1f}, {high:.1f}]" in doc
        low, high = entry["answer_in_context_ci"]
        assert f"{entry['answer_in_context']:.1f} [{low:.1f}, {high:.1f}]" in doc
    assert (REPO / "docs" / "train-local" / "reward.png").stat().st_size > 10_000


LINKED_DOCS = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")),
               "integrations/llama-index-retrievers-s3/README.md", "integrations/langchain-s3/README.md"]


@pytest.mark.parametrize("doc", LINKED_DOCS)
def test_relative_links_and_images_exist(doc: str) -> None:
    """Every relative link and picture of a doc (the report.html screenshot included) is a file of the repository."""
    import re

    page = REPO / doc
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
    missing = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not missing, f"{doc} links to missing files: {missing}"
