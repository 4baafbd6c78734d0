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


def test_layering_rule_catches_a_core_import_of_training(tmp_path) -> None:
    bad = REPO / "s3_agents" / "_layering_probe.py"
    bad.write_text("import training  # noqa: F401\n")
    try:
        result = subprocess.run([shutil.which("ruff") or "ruff", "check", str(bad)], cwd=REPO,
                                capture_output=True, text=True)
    finally:
        bad.unlink()
    assert result.returncode == 1 and "TID251" in result.stdout
