"""LoRA adapters for llama.cpp: a peft adapter folder written as a GGUF LoRA file, with the ``gguf`` package.

llama.cpp applies a GGUF LoRA at run time on top of the (quantised) base GGUF: ``Llama(lora_path=...)``,
``python -m llama_cpp.server --lora_path``, ``llama-server --lora``, or an Ollama ``ADAPTER`` line. The file
holds, for every adapted projection, the two factors under llama.cpp's tensor names
(``blk.<i>.attn_q.weight.lora_a`` / ``.lora_b``) and the adapter's ``alpha`` (llama.cpp scales by
``alpha / rank``, as peft does).

One fact of the layout matters: llama.cpp's converter reorders the rows of LLaMA-architecture query and key
projections for its rotary kernels (the two halves of each head interleaved), so the ``B`` factor of those
projections (whose rows are the projection's outputs) is reordered the same way here. Qwen2/Qwen3 GGUFs keep
Hugging Face's order.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from s3_agents.config import cache_root
from s3_agents.errors import DataError
from s3_agents.locks import atomic_path

__all__ = ["write_gguf_lora", "write_gguf_lora_tensors", "gguf_lora_for", "check_lora_config"]

_PERMUTED_QK = {"llama"}
"""Architectures whose GGUF query/key rows are reordered (the B factor of q_proj and k_proj follows)."""
_SUPPORTED = _PERMUTED_QK | {"qwen2", "qwen3"}
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<factor>[AB])\.weight$")


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as err:
        raise ImportError('writing a GGUF LoRA needs the gguf package: pip install "s3-agents[gguf]"') from err
    return gguf


def _base_info(base_gguf: Path) -> dict[str, Any]:
    """Architecture, block count and head counts of a GGUF model."""
    gguf = _gguf()
    if not base_gguf.is_file():
        raise FileNotFoundError(f"base GGUF not found: {base_gguf}")
    fields = gguf.GGUFReader(str(base_gguf)).fields

    def value(key: str) -> Any:
        field = fields.get(key)
        if field is None:
            raise DataError(f"{base_gguf} has no {key} (not a GGUF model file?)")
        return field.contents()

    arch = str(value("general.architecture"))
    return {"arch": arch, "blocks": int(value(f"{arch}.block_count")),
            "heads": int(value(f"{arch}.attention.head_count")),
            "kv_heads": int(fields[f"{arch}.attention.head_count_kv"].contents()
                            if f"{arch}.attention.head_count_kv" in fields else value(f"{arch}.attention.head_count"))}


def _read_adapter(adapter: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The adapter's config and its tensors as float32 numpy arrays.

    float32 even for an adapter saved in float16: llama.cpp multiplies activations by a float16 factor in
    float16 too, and that rounding changed 2 of 16 greedy turns of the shipped searcher; in float32 all 16
    matched transformers.
    """
    from safetensors.numpy import load_file

    config_path, weights = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"no LoRA adapter in {adapter}: adapter_config.json and adapter_model.safetensors "
                                "are needed (peft's save_pretrained)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    check_lora_config(config, str(config_path))
    return config, {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(weights)).items()}


def check_lora_config(config: dict[str, Any], where: str) -> None:
    """Refuse a peft LoRA config that llama.cpp's LoRA format cannot hold (``where`` names it in the error)."""
    unsupported = [name for name, bad in (
        ("peft_type other than LORA", str(config.get("peft_type", "LORA")).rsplit(".", 1)[-1] != "LORA"),
        ("use_dora", config.get("use_dora")), ("use_rslora", config.get("use_rslora")),
        ("rank_pattern", config.get("rank_pattern")), ("alpha_pattern", config.get("alpha_pattern")),
        ("modules_to_save", config.get("modules_to_save")), ("bias", config.get("bias", "none") != "none"),
        ("fan_in_fan_out", config.get("fan_in_fan_out"))) if bad]
    if unsupported:
        raise DataError(f"{where}: llama.cpp's LoRA format cannot hold {', '.join(unsupported)}")


def _permute_rows(rows: Any, heads: int) -> Any:
    """Reorder output rows as llama.cpp's converter does for LLaMA q/k: each head's two halves interleaved."""
    return (rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def write_gguf_lora(adapter: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Write the peft LoRA adapter in ``adapter`` as a GGUF LoRA for the base model ``base_gguf``.

    Args:
        adapter: A peft adapter folder (``s3 train warmstart`` / ``s3 train local``, or the shipped searcher).
        base_gguf: The GGUF file of the base model the adapter was trained on (its architecture, layer and
            head counts are read from it; its weights are not touched).
        out: The ``.gguf`` file to write (atomically: a reader never sees half a file).

    Returns:
        ``out``.

    Raises:
        FileNotFoundError: If the adapter or the base GGUF is missing.
        DataError: If the adapter uses what llama.cpp's LoRA format cannot hold (DoRA, rsLoRA, per-layer
            ranks, fully trained modules), targets a module llama.cpp does not name, or the architecture is
            not one whose layout is known here (llama, qwen2, qwen3).

    Example:
        >>> from s3_agents.llm import smollm2_gguf_path
        >>> from s3_agents.trained import trained_searcher_dir
        >>> write_gguf_lora(trained_searcher_dir(), smollm2_gguf_path(), "/tmp/searcher-lora.gguf")  # doctest: +SKIP
        PosixPath('/tmp/searcher-lora.gguf')
        >>> # python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --lora_path /tmp/searcher-lora.gguf
    """
    config, tensors = _read_adapter(Path(adapter))
    return write_gguf_lora_tensors(tensors, float(config["lora_alpha"]), base_gguf, out, source=str(adapter))


def write_gguf_lora_tensors(tensors: dict[str, Any], alpha: float, base_gguf: str | Path, out: str | Path, *,
                            source: str = "adapter") -> Path:
    """:func:`write_gguf_lora` from the adapter's tensors in memory (peft names, numpy arrays) and its alpha.

    The trainer writes its live adapter this way after every update (no peft folder in between).
    """
    gguf = _gguf()
    base_gguf, out = Path(base_gguf), Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder: give the .gguf file to write")
    info = _base_info(base_gguf)
    if info["arch"] not in _SUPPORTED:
        raise DataError(f"{base_gguf}: architecture {info['arch']!r} is not one whose GGUF layout is known here "
                        f"({', '.join(sorted(_SUPPORTED))})")
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, info["arch"].upper()), info["blocks"])
    factors: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise DataError(f"{source}: tensor {key} is not a LoRA factor (lora_A / lora_B)")
        module = match["module"]
        target = names.get_name(module)
        if target is None:
            raise DataError(f"{source}: llama.cpp has no tensor for module {module}")
        value = np.asarray(value, dtype=np.float32)
        if match["factor"] == "B" and info["arch"] in _PERMUTED_QK:
            if module.endswith("q_proj"):
                value = _permute_rows(value, info["heads"])
            elif module.endswith("k_proj"):
                value = _permute_rows(value, info["kv_heads"])
        factors.setdefault(target, {})[match["factor"]] = value
    if not factors:
        raise DataError(f"{source}: the adapter holds no LoRA factor")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(tmp, info["arch"])
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        for target in sorted(factors):
            pair = factors[target]
            if set(pair) != {"A", "B"}:
                raise DataError(f"{source}: module {target} has only lora_{''.join(pair)}")
            writer.add_tensor(f"{target}.weight.lora_a", pair["A"])
            writer.add_tensor(f"{target}.weight.lora_b", pair["B"])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out


def gguf_lora_for(adapter: str | Path, base_gguf: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The GGUF LoRA of ``adapter``, written once into a cache and reused while the adapter is unchanged.

    The cache key is a hash of the adapter's files and the base GGUF's name and size, so a retrained adapter
    gets a new file. Default cache: ``gguf-lora/`` under :func:`~s3_agents.config.cache_root`.

    Example:
        >>> from s3_agents.llm import smollm2_gguf_path
        >>> from s3_agents.trained import trained_searcher_dir
        >>> path = gguf_lora_for(trained_searcher_dir(), smollm2_gguf_path())                   # doctest: +SKIP
    """
    adapter, base_gguf = Path(adapter), Path(base_gguf)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = adapter / name
        if not path.is_file():
            raise FileNotFoundError(f"no LoRA adapter in {adapter}: {name} is missing")
        digest.update(path.read_bytes())
    digest.update(f"{base_gguf.name}:{base_gguf.stat().st_size if base_gguf.is_file() else 0}".encode())
    root = (Path(cache_dir) if cache_dir else cache_root()) / "gguf-lora"
    out = root / f"{adapter.name or 'adapter'}-{digest.hexdigest()[:16]}.gguf"
    return out if out.is_file() else write_gguf_lora(adapter, base_gguf, out)
