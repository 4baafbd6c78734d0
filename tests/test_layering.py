"""The core imports none of verl, vllm, training/ or integrations/, and stays light to import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

BLOCKED = ["verl", "vllm", "ray", "training", "integrations", "llama_index"]


def run_blocked(blocked: set[str] | list[str], body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter where importing any of the ``blocked`` top-level packages fails."""
    guard = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(blocked)!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
    """)
    return subprocess.run([sys.executable, "-c", guard + textwrap.dedent(body)], capture_output=True, text=True,
                          cwd=REPO)


def test_core_imports_with_heavy_and_upper_layers_blocked() -> None:
    result = run_blocked(BLOCKED, """
        import s3_agents, s3_agents.cli, s3_agents.server, s3_agents.retrievers, s3_agents.llm
        from s3_agents.retrievers import faiss, qdrant, bm25, remote
        heavy = [m for m in ("torch", "sentence_transformers", "faiss", "qdrant_client", "bm25s", "llama_cpp")
                 if m in sys.modules]
        print(",".join(heavy))
    """)
    assert result.returncode == 0, result.stderr
    # Backends load lazily: importing the package pulls in no model or index library.
    assert result.stdout.strip() == ""


def test_public_api_is_explicit() -> None:
    import s3_agents

    assert s3_agents.__all__ and all(hasattr(s3_agents, name) for name in s3_agents.__all__)


def test_integrations_import_without_verl() -> None:
    result = run_blocked({"verl", "vllm", "ray", "training"}, """
        import integrations.llamaindex, integrations.langchain, integrations.langgraph_node
    """)
    assert result.returncode == 0, result.stderr


def test_training_depends_on_the_core_only() -> None:
    result = run_blocked({"integrations", "llama_index", "langchain_openai", "vllm"}, """
        import training.agent_loop, training.policy, training.reward, training.data, training.ppo
        import training.launch, training.export, training.cli, training.local_server
    """)
    assert result.returncode == 0, result.stderr


def test_s3_train_without_the_training_package_says_what_to_install() -> None:
    result = run_blocked({"training", "verl"}, """
        from s3_agents.cli import main
        main(["train", "run", "--model", "x"])
    """)
    assert result.returncode == 1
    assert "`s3 train` is unavailable" in result.stderr and "s3-agents[train]" in result.stderr
