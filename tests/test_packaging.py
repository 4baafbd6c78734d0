"""The three distributions build as wheels and import from a fresh venv, under their ecosystems' names.

* ``s3-agents``: ``s3_agents`` with ``training/`` installed as ``s3_agents.training`` (``s3 train`` plugs in);
* ``llama-index-retrievers-s3``: ``llama_index.retrievers.s3`` (``llama_index`` and ``llama_index.retrievers``
  stay namespace packages, shared with ``llama-index-core``);
* ``langchain-s3``: ``langchain_s3``.

Nothing lands under a generic top-level name (``training``, ``integrations``, ``tests``). The venv gets only
the three wheels; their third-party dependencies are read from this interpreter's site-packages, placed
after the venv's own, so every one of our modules comes from the wheels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SOURCES = {  # distribution -> what its build needs from the repository
    "s3_agents": ["pyproject.toml", "README.md", "s3_agents", "training"],
    "llama_index_retrievers_s3": ["integrations/llama-index-retrievers-s3"],
    "langchain_s3": ["integrations/langchain-s3"],
}


def _build(name: str, work: Path, out: Path) -> Path:
    """Copy the sources of one distribution into ``work`` (a clean tree) and build its wheel into ``out``."""
    src = work / name
    for item in SOURCES[name]:
        path = REPO / item
        dest = src if len(SOURCES[name]) == 1 else src / path.name
        if path.is_dir():
            shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                             str(src)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob(f"{name}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    work, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheels")
    return {name: _build(name, work, out) for name in SOURCES}


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheels_hold_every_module_under_the_new_names(wheels) -> None:
    tops = {name: {f.split("/")[0] for f in _files(wheel) if ".dist-info/" not in f} for name, wheel in wheels.items()}
    assert tops == {"s3_agents": {"s3_agents"}, "llama_index_retrievers_s3": {"llama_index"},
                    "langchain_s3": {"langchain_s3"}}
    core = set(_files(wheels["s3_agents"]))
    expected = {f"s3_agents/{p.relative_to(REPO / 's3_agents').as_posix()}"
                for p in (REPO / "s3_agents").rglob("*.py") if "__pycache__" not in p.parts}
    training = REPO / "training"
    expected |= {f"s3_agents/training/{p.relative_to(training).as_posix()}" for p in training.rglob("*")
                 if p.suffix in {".py", ".yaml"} and "__pycache__" not in p.parts}
    assert not expected - core, f"missing from the wheel (list the package in pyproject.toml): {expected - core}"
    assert "s3_agents/py.typed" in core and "s3_agents/data/demo_corpus.jsonl" in core
    entry_points = zipfile.ZipFile(wheels["s3_agents"]).read("s3_agents-0.1.0.dist-info/entry_points.txt").decode()
    assert "train = s3_agents.training.cli:app" in entry_points
    llama = _files(wheels["llama_index_retrievers_s3"])
    # Namespace packages: an __init__.py here would shadow llama-index-core's llama_index.
    assert "llama_index/__init__.py" not in llama and "llama_index/retrievers/__init__.py" not in llama
    assert {"llama_index/retrievers/s3/__init__.py", "llama_index/retrievers/s3/base.py"} <= set(llama)


def test_fresh_venv_imports_the_wheels(wheels, tmp_path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "--quiet", *map(str, wheels.values())],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    host = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site / "zz_host_dependencies.pth").write_text("\n".join(host) + "\n")  # after the venv's own entries
    probe = textwrap.dedent(f"""
        import importlib.util, sys
        from llama_index.core.query_engine import RetrieverQueryEngine
        from llama_index.retrievers.s3 import S3Retriever
        from langchain_s3 import S3Retriever as LangChainS3Retriever, s3_search_tool
        import s3_agents, s3_agents.training.cli
        from s3_agents import FaissRetriever, S3Searcher, load_demo_corpus, load_embedder
        from s3_agents.testing import ScriptedClient

        site = {str(site)!r}
        ours = ("s3_agents", "s3_agents.training", "llama_index.retrievers.s3", "langchain_s3")
        mods = [sys.modules[m] for m in ours]
        assert all(m.__file__.startswith(site) for m in mods), [m.__file__ for m in mods]
        assert not sys.modules["llama_index.core"].__file__.startswith(site)
        assert [importlib.util.find_spec(n) for n in ("training", "integrations")] == [None, None]
        retriever = FaissRetriever.from_passages(load_demo_corpus().passages, load_embedder("hashing"))
        searcher = S3Searcher(ScriptedClient.one_search("Ketroul currency"), retriever)
        print(S3Retriever(searcher).retrieve("What is the currency of Ketroul?")[0].node.metadata["title"])
        print(LangChainS3Retriever(searcher=searcher).invoke("What is the currency of Ketroul?")[0].metadata["title"])
    """)
    result = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["Ketroul", "Ketroul"]
    train = subprocess.run([str(venv / "bin" / "s3"), "train", "--help"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert train.returncode == 0 and "prepare" in train.stdout, train.stderr[-3000:]
