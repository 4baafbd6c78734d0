"""Write a benchmark's markdown section into docs/benchmarks.md between its markers."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nNumbers from the scripts in `benchmarks/`; each section names the command that wrote it.\n"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    block = f"<!-- {name}:start -->\n{body.rstrip()}\n\n_Run on {stamp}, {machine()}._\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")
