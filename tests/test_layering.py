"""The core imports none of verl, vllm, training/ (s3_agents.training) or the integration distributions, and stays
light to import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

BLOCKED = ["verl", "vllm", "ray", "s3_agents.training", "llama_index", "langchain_s3"]


def run_blocked(blocked: set[str] | list[str], body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter where importing any of the ``blocked`` packages (or their modules) fails.

    The interpreter's last line of stdout lists the blocked imports that were attempted (:func:`attempted`): an
    import inside ``try: ... except ImportError`` fails quietly, so an exit code of 0 alone would miss it.
    """
    guard = textwrap.dedent(f"""
        import atexit, json, sys
        attempted = []
        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in {sorted(blocked)!r}):
                    attempted.append(name)
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        atexit.register(lambda: print("blocked imports attempted: " + json.dumps(sorted(set(attempted)))))
    """)
    return subprocess.run([sys.executable, "-c", guard + textwrap.dedent(body)], capture_output=True, text=True,
                          cwd=REPO)


def attempted(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The blocked modules that :func:`run_blocked`'s interpreter tried to import."""
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("blocked imports attempted: "), result.stdout + result.stderr
    return json.loads(last.split(": ", 1)[1])


def printed(result: subprocess.CompletedProcess[str]) -> str:
    """What the body printed (the guard's last line left out)."""
    return "\n".join(result.stdout.strip().splitlines()[:-1])


def test_core_imports_with_heavy_and_upper_layers_blocked() -> None:
    result = run_blocked(BLOCKED, """
        import s3_agents, s3_agents.cli, s3_agents.server, s3_agents.retrievers, s3_agents.llm
        from s3_agents.cli import app          # the application, with its plugin command groups
        from s3_agents.retrievers import faiss, qdrant, bm25, remote
        heavy = [m for m in ("torch", "sentence_transformers", "faiss", "qdrant_client", "bm25s", "llama_cpp")
                 if m in sys.modules]
        print(",".join(heavy))
    """)
    # The one blocked import tried is the CLI's plugin loader asking for the `train` entry point (which becomes a
    # command saying what to install): nothing of the core reaches for verl, vllm, ray or the integrations.
    assert result.returncode == 0 and attempted(result) == ["s3_agents.training"], result.stderr
    # Backends load lazily: importing the package pulls in no model or index library.
    assert printed(result) == ""


def test_public_api_is_explicit() -> None:
    import s3_agents

    assert s3_agents.__all__ and all(hasattr(s3_agents, name) for name in s3_agents.__all__)


def test_integrations_import_without_verl() -> None:
    result = run_blocked({"verl", "vllm", "ray", "s3_agents.training"}, """
        import llama_index.retrievers.s3, langchain_s3, s3_agents.rag_graph
        print(all(m in sys.modules for m in ("llama_index.retrievers.s3", "langchain_s3", "s3_agents.rag_graph")))
    """)
    assert result.returncode == 0 and attempted(result) == [], result.stderr
    assert printed(result) == "True"


def test_training_depends_on_the_core_only() -> None:
    result = run_blocked({"llama_index", "langchain_s3", "langchain_openai", "vllm"}, """
        import s3_agents.training.agent_loop, training.policy, training.reward, training.data, training.ppo
        import s3_agents.training.launch, training.export, training.cli, training.local_server
    """)
    assert result.returncode == 0 and attempted(result) == [], result.stderr


def test_s3_train_without_the_training_package_says_what_to_install() -> None:
    result = run_blocked({"s3_agents.training", "verl"}, """
        from s3_agents.cli import main
        main(["train", "run", "--model", "x"])
    """)
    assert result.returncode == 1 and attempted(result) == ["s3_agents.training"]
    assert "`s3 train` is unavailable" in result.stderr and "s3-agents[train]" in result.stderr


def test_nothing_imports_the_old_top_level_names() -> None:
    """``training`` and ``integrations`` are folders, not packages: code imports s3_agents.training,
    llama_index.retrievers.s3 and langchain_s3 (the cwd on sys.path would otherwise hide a stale import)."""
    import ast

    stale = []
    for path in REPO.rglob("*.py"):
        if {".git", "build", ".venv"} & set(path.relative_to(REPO).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            stale += [f"{path.relative_to(REPO)}:{node.lineno}" for n in names
                      if n.split(".")[0] in {"training", "integrations"}]
    assert not stale, stale


# Layers of the core, lowest first: a module imports from its own layer or lower ones, never higher.
LAYERS = [
    {"types", "errors", "config", "locks", "processes", "_tasks", "prompts", "corpus", "qa", "protocol"},
    {"embedders", "llm", "testing", "retrievers", "generator", "metrics"},
    {"rag_cache", "graph", "worlds", "trained", "reward", "realqa"},
    {"searcher", "scoring", "rag_graph"},
    {"evaluation", "server"},
    {"cli", "__main__", ""},  # "" is the package itself (s3_agents/__init__.py re-exports)
]


def _core_imports() -> dict[str, set[str]]:
    """Every ``s3_agents`` module and the ``s3_agents`` modules it imports (lazy imports included)."""
    import ast

    modules = {}
    for path in (REPO / "s3_agents").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges[name] |= {resolve(a.name) for a in node.names if a.name.startswith("s3_agents")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("s3_agents"):
                edges[name] |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                                else resolve(node.module) for a in node.names}
        edges[name].discard(name)
    return edges


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, layer in enumerate(LAYERS):
        if top in layer:
            return rank
    raise AssertionError(f"s3_agents.{top} is in no layer: add it to LAYERS in tests/test_layering.py")


def test_core_import_graph_has_no_cycle_and_no_upward_import() -> None:
    edges = _core_imports()
    upward = [f"{a} -> {b}" for a, targets in edges.items() for b in targets if _layer(b) > _layer(a)]
    assert not upward, f"imports from a lower layer to a higher one: {upward}"
    # Cycles: depth-first search for a back edge, reporting the loop it closes.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        state[node] = 2
        path.pop()
        return None

    for start in sorted(edges):
        if start not in state and (loop := visit(start)):
            raise AssertionError(f"import cycle: {' -> '.join(loop)}")


def test_the_layering_check_sees_cycles_and_upward_imports(tmp_path, monkeypatch) -> None:
    """The check itself fails on a planted cycle and a planted upward import (so it cannot pass vacuously)."""
    fake = tmp_path / "s3_agents"
    (fake / "graph").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "graph" / "__init__.py").write_text("")
    (fake / "types.py").write_text("from s3_agents.graph import nodes\n")                    # foundation -> graph
    (fake / "graph" / "nodes.py").write_text("def f():\n    from s3_agents.graph import state\n")
    (fake / "graph" / "state.py").write_text("from s3_agents.graph.nodes import f\n")         # nodes <-> state
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    edges = _core_imports()
    assert edges["s3_agents.types"] == {"s3_agents.graph.nodes"}
    with pytest.raises(AssertionError, match="lower layer to a higher one"):
        test_core_import_graph_has_no_cycle_and_no_upward_import()
    (fake / "types.py").write_text("")
    with pytest.raises(AssertionError, match="import cycle: s3_agents.graph.nodes -> s3_agents.graph.state"):
        test_core_import_graph_has_no_cycle_and_no_upward_import()
