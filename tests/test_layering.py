"""The core imports none of verl, vllm, training/ or integrations/, and stays light to import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

BLOCKED = ["verl", "vllm", "ray", "training", "integrations", "llama_index"]


def test_core_imports_with_heavy_and_upper_layers_blocked() -> None:
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import s3_agents, s3_agents.cli, s3_agents.server, s3_agents.retrievers, s3_agents.llm
        from s3_agents.retrievers import faiss, qdrant, bm25, remote
        heavy = [m for m in ("torch", "sentence_transformers", "faiss", "qdrant_client", "bm25s", "llama_cpp")
                 if m in sys.modules]
        print(",".join(heavy))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    # Backends load lazily: importing the package pulls in no model or index library.
    assert result.stdout.strip() == ""


def test_public_api_is_explicit() -> None:
    import s3_agents

    assert s3_agents.__all__ and all(hasattr(s3_agents, name) for name in s3_agents.__all__)


def test_integrations_import_without_verl() -> None:
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"verl", "vllm", "ray", "training"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import integrations.llamaindex, integrations.langchain, integrations.langgraph_node
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_training_depends_on_the_core_only() -> None:
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"integrations", "llama_index", "langchain_openai", "vllm"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import training.agent_loop, training.policy, training.reward, training.data, training.ppo
        import training.launch, training.export, training.cli, training.local_server
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_s3_train_without_the_training_package_says_what_to_install() -> None:
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"training", "verl"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from s3_agents.cli import main
        main(["train", "run", "--model", "x"])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert "`s3 train` is unavailable" in result.stderr and "s3-agents[train]" in result.stderr
