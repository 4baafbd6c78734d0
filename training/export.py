"""Trained searcher to a Hugging Face model folder the core loads as its policy.

verl saves FSDP shards per rank (``<run>/checkpoints/global_step_N/actor/model_world_size_W_rank_R.pt``
plus ``actor/huggingface`` with config and tokenizer). :func:`export_policy` merges them with verl's
own model merger into a plain folder; :func:`save_policy` writes a model trained in this process
(:class:`~s3_agents.training.ppo.CpuPPO`). Either folder is a searcher for
``TransformersClient(folder)``, for ``vllm serve folder`` behind ``OpenAICompatClient``, and from
there for the LlamaIndex / LangChain / LangGraph integrations.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["export_policy", "save_policy", "find_actor_checkpoint"]


def find_actor_checkpoint(path: str | Path) -> Path:
    """The FSDP actor folder inside a run, checkpoint folder or step folder (latest step if several).

    Raises:
        FileNotFoundError: When there is no actor checkpoint under ``path``.
    """
    path = Path(path)
    if (path / "fsdp_config.json").is_file() or any(path.glob("model_world_size_*_rank_0.pt")):
        return path
    if (path / "actor").is_dir():
        return find_actor_checkpoint(path / "actor")
    tracker = path / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        return find_actor_checkpoint(path / f"global_step_{tracker.read_text().strip()}")
    steps = sorted(path.glob("global_step_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    if steps:
        return find_actor_checkpoint(steps[-1])
    raise FileNotFoundError(f"no verl actor checkpoint under {path} (expected global_step_N/actor/"
                            "model_world_size_*_rank_*.pt)")


def _is_hf_folder(path: Path) -> bool:
    weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return (path / "config.json").is_file() and weights


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the searcher in ``checkpoint`` as a Hugging Face folder at ``out``.

    Args:
        checkpoint: A verl run / checkpoint / step / actor folder, or already a Hugging Face folder.
        out: Folder to create (model weights, config, tokenizer).

    Returns:
        ``out``.

    Example:
        >>> export_policy("runs/s3/checkpoints", "searcher-hf")           # doctest: +SKIP
        >>> TransformersClient("searcher-hf")                             # doctest: +SKIP
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if _is_hf_folder(checkpoint):
        shutil.copytree(checkpoint, out, dirs_exist_ok=True)
        return out
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    actor = find_actor_checkpoint(checkpoint)
    hf_config = actor / "huggingface"
    if not (hf_config / "config.json").is_file():
        raise FileNotFoundError(f"{hf_config} has no config.json: verl writes it next to the shards")
    config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=str(actor), target_dir=str(out),
                               hf_model_config_path=str(hf_config))
    FSDPModelMerger(config).merge_and_save()
    return out


def save_policy(model: Any, tokenizer: Any, out: str | Path) -> Path:
    """Save a policy trained in this process (e.g. by ``CpuPPO``) as a Hugging Face folder."""
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
