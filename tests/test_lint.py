"""Ruff, including the layering rule: the core may not import verl, vllm, training or integrations."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed; it comes with the dev extra: pip install -e '.[dev]'")
    result = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("path", "banned"), [
    ("s3_agents/probe.py", True),
    ("training/probe.py", False),
])
def test_layering_rule(path: str, banned: bool) -> None:
    """`import s3_agents.training` (or verl) is refused in the core and allowed under training/."""
    source = "import s3_agents.training  # noqa: F401\nimport verl  # noqa: F401\n"
    result = subprocess.run([shutil.which("ruff") or "ruff", "check", "--stdin-filename", path, "-"],
                            input=source, cwd=REPO, capture_output=True, text=True)
    assert (result.returncode == 1 and result.stdout.count("TID251") == 2) is banned, result.stdout
