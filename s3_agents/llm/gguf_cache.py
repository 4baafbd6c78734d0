"""A GGUF file as a transformers folder, de-quantised once and cached.

transformers reads a GGUF file by de-quantising every tensor and rebuilding the tokenizer from the file's
vocabulary: about 20 seconds for SmolLM2-135M on two cores, each time a process loads it. The folder written
here (float32 ``model.safetensors``, ``config.json``, the tokenizer's files) loads in under a second. It holds
exactly what transformers made of the GGUF file, so a model loaded from it is the same model.

The folder lives under ``gguf-hf/`` in :func:`~s3_agents.config.cache_root`, keyed by the GGUF file's path, size
and modification time and by the transformers version: a changed file or a new transformers gets a new folder.
It takes float32's size on disk (540 MB for SmolLM2's 93 MB Q4_1 file). It is written beside its final place
and renamed into it, so a killed conversion leaves no half folder, and two processes converting at once both
end with the same one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from s3_agents.config import cache_root
from s3_agents.locks import fsync_dir

__all__ = ["gguf_transformers_dir", "transformers_source"]

STALE_SECONDS = 3600
"""A temporary folder older than this is a killed conversion's, and the next conversion removes it."""


def gguf_transformers_dir(gguf: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The transformers folder of ``gguf`` (weights, config, tokenizer), converted on first use.

    Args:
        gguf: A GGUF model file (e.g. :func:`~s3_agents.llm.smollm2_gguf_path`).
        cache_dir: Root of the cache (default: :func:`~s3_agents.config.cache_root`).

    Returns:
        A folder for ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

    Raises:
        FileNotFoundError: If ``gguf`` is not a file.
        ImportError: If the folder must be made and the ``gguf`` package is missing.

    Example:
        >>> from transformers import AutoModelForCausalLM                                      # doctest: +SKIP
        >>> from s3_agents.llm import smollm2_gguf_path
        >>> folder = gguf_transformers_dir(smollm2_gguf_path())          # ~20 s the first time   # doctest: +SKIP
        >>> model = AutoModelForCausalLM.from_pretrained(folder)         # under a second          # doctest: +SKIP
    """
    import transformers

    gguf = Path(gguf).resolve()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")
    stat = gguf.stat()
    key = f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}:{transformers.__version__}"
    root = (Path(cache_dir) if cache_dir else cache_root()) / "gguf-hf"
    out = root / f"{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if (out / "config.json").is_file():
        return out
    _require_gguf()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    tmp = root / f".{out.name}.{uuid.uuid4().hex}.tmp"
    try:
        _convert(gguf, tmp)
        (tmp / "SOURCE").write_text(f"{key}\n", encoding="utf-8")
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        fsync_dir(tmp)
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "config.json").is_file():      # not "another process published it first"
                raise
        fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def transformers_source(model: str | Path, gguf_file: str | None = None) -> tuple[str, dict[str, Any]]:
    """What to pass ``from_pretrained`` for ``model`` (a hub id or folder) and an optional GGUF file in it.

    A GGUF file on this machine becomes its cached folder (:func:`gguf_transformers_dir`); a GGUF file in a hub
    repository is left to transformers (``gguf_file=``), which downloads and de-quantises it.

    Returns:
        ``(path_or_id, kwargs)``: call ``AutoModelForCausalLM.from_pretrained(path_or_id, **kwargs)``.
    """
    if not gguf_file:
        return str(model), {}
    local = Path(model) / gguf_file
    if local.is_file():
        return str(gguf_transformers_dir(local)), {}
    _require_gguf()
    return str(model), {"gguf_file": gguf_file}


def _require_gguf() -> None:
    """Raise a clear ImportError when transformers would need the ``gguf`` package and it is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise ImportError('reading GGUF files with transformers needs the gguf package: pip install "s3-agents[gguf]"')


def _convert(gguf: Path, folder: Path) -> None:
    """De-quantise ``gguf`` with transformers and save the model and tokenizer into ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _remove_stale(root: Path) -> None:
    """Remove the temporary folders of conversions killed more than :data:`STALE_SECONDS` ago."""
    for path in root.glob(".*.tmp"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
