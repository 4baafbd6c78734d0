"""Launch verl's PPO trainer on the s3 searcher: checks first, then ``python -m verl.trainer.main_ppo``.

Everything a GPU run needs is checked before anything heavy starts (a GPU, vLLM, the data, the
retriever, the generator endpoint), and every problem is reported at once.
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s3_agents.errors import S3Error
from s3_agents.reward import RewardVariant
from s3_agents.training.paths import CONFIG_DIR

__all__ = ["TrainJob", "PreflightError", "preflight", "launch", "compose_config", "PRESETS"]

PRESETS = ("s3_ppo_1gpu", "s3_ppo")
"""``s3_ppo``: the paper's settings (5 GPUs, batch 120); ``s3_ppo_1gpu``: one GPU, small searcher."""

_REWARD_FILE = Path(__file__).resolve().parent / "reward.py"


class PreflightError(S3Error, RuntimeError):
    """What is missing for a GPU training run (every problem found, one per line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("cannot start training:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass
class TrainJob:
    """One PPO run of the searcher.

    Args:
        model: The searcher to train: a hub id or a local Hugging Face folder (s3: Qwen2.5-7B-Instruct).
        train_files: Parquet from ``s3 train prepare``.
        val_files: Validation parquet (default: the training files).
        retriever: Index directory or retrieval-server URL (``s3 serve``).
        generator_url: OpenAI-compatible endpoint of the frozen generator.
        generator_model: Its model name.
        rag_cache: SQLite of naive-RAG baselines (``s3 precompute``).
        preset: ``"s3_ppo_1gpu"`` or ``"s3_ppo"`` (the paper's settings).
        search: Loop shape (paper: ``"8-3-3"``).
        variant: Reward: ``"gbr"`` (paper), ``"gbr+acc"`` (s3 code), ``"acc"``; ``"context"`` or ``"support"``
            (no generator call).
        output_dir: Run folder: the agent-loop YAML, logs and checkpoints go there.
        n_gpus: GPUs per node (default: the preset's).
        steps: Training steps (default: the preset's).
        lora_rank: LoRA rank of the actor (verl's ``actor_rollout_ref.model.lora_rank``, alpha twice the rank;
            0 trains the full model; default: the preset's, 0 in both, as the paper).
        init_adapter: A LoRA adapter to start from (e.g. ``s3 train warmstart`` output:
            ``actor_rollout_ref.model.lora_adapter_path``).
        extra_overrides: More Hydra overrides, passed last (``key=value``).

    Example:
        >>> job = TrainJob(model="Qwen/Qwen2.5-0.5B-Instruct", train_files=["data/train.parquet"],
        ...                retriever="http://127.0.0.1:3000/retrieve", generator_url="http://127.0.0.1:8000/v1",
        ...                generator_model="qwen14b", rag_cache="data/rag.sqlite")
        >>> "actor_rollout_ref.model.path=Qwen/Qwen2.5-0.5B-Instruct" in job.hydra_overrides()
        True
    """

    model: str
    train_files: list[str]
    retriever: str
    generator_url: str
    generator_model: str
    rag_cache: str
    val_files: list[str] | None = None
    preset: str = "s3_ppo_1gpu"
    search: str = "8-3-3"
    variant: RewardVariant = "gbr"
    output_dir: str = "runs/s3"
    n_gpus: int | None = None
    steps: int | None = None
    lora_rank: int | None = None
    init_adapter: str | None = None
    extra_overrides: list[str] = field(default_factory=list)

    @property
    def agent_loop_path(self) -> Path:
        return Path(self.output_dir).resolve() / "agent_loop.yaml"

    def agent_loop_config(self) -> list[dict[str, Any]]:
        """The agent-loop registry entry of this run (``training/config/agent_loop.yaml`` filled in)."""
        entries = yaml.safe_load((CONFIG_DIR / "agent_loop.yaml").read_text())
        for entry in entries:
            if entry["name"] == "s3_searcher":
                entry.update(retriever=_absolute(self.retriever), search=self.search)
        return entries

    def hydra_overrides(self) -> list[str]:
        """Hydra overrides for verl's ``main_ppo`` on top of the preset."""
        def files(paths: Sequence[str]) -> str:
            return "[" + ",".join(_absolute(p) for p in paths) + "]"

        kw = "reward.custom_reward_function.reward_kwargs"
        out = [
            f"data.train_files={files(self.train_files)}",
            f"data.val_files={files(self.val_files or self.train_files)}",
            f"actor_rollout_ref.model.path={_absolute(self.model)}",
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={self.agent_loop_path}",
            f"reward.custom_reward_function.path={_REWARD_FILE}",
            f"{kw}.generator_url={self.generator_url}",
            f"{kw}.generator_model={self.generator_model}",
            f"{kw}.rag_cache={_absolute(self.rag_cache)}",
            f"{kw}.retriever={_absolute(self.retriever)}",
            f"{kw}.variant={self.variant}",
            f"trainer.default_local_dir={Path(self.output_dir).resolve() / 'checkpoints'}",
        ]
        if self.n_gpus is not None:
            out.append(f"trainer.n_gpus_per_node={self.n_gpus}")
        if self.steps is not None:
            out.append(f"trainer.total_training_steps={self.steps}")
        if self.lora_rank is not None:
            out += [f"actor_rollout_ref.model.lora_rank={self.lora_rank}",
                    f"actor_rollout_ref.model.lora_alpha={2 * self.lora_rank}"]
        if self.init_adapter:
            out.append(f"actor_rollout_ref.model.lora_adapter_path={_absolute(self.init_adapter)}")
        return out + list(self.extra_overrides)

    def command(self) -> list[str]:
        """The command ``launch`` runs."""
        return [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(CONFIG_DIR),
                "--config-name", self.preset, *self.hydra_overrides()]


def _absolute(location: str) -> str:
    """Local paths made absolute (Ray workers run elsewhere); URLs and hub ids as given."""
    if location.startswith(("http://", "https://")) or not Path(location).exists():
        return location
    return str(Path(location).resolve())


def compose_config(job: TrainJob) -> Any:
    """The full verl config of ``job`` (preset + overrides), composed with Hydra as ``main_ppo`` will."""
    from hydra import compose, initialize_config_dir

    if job.preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {job.preset!r}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=job.preset, overrides=job.hydra_overrides())


def preflight(job: TrainJob, *, check_gpu: bool = True, check_endpoints: bool = True) -> list[str]:
    """Everything missing for ``job``, as messages (empty when it can start).

    Checks, cheapest first: the data files, the retriever and RAG cache, verl's config (composed and
    validated by verl's own ``validate_config``), vLLM, the GPUs, the generator endpoint.
    """
    problems: list[str] = []
    if importlib.util.find_spec("verl") is None:
        return ['verl is not installed: pip install "s3-agents[train]" (and vLLM on the GPU machine)']
    for path in [*job.train_files, *(job.val_files or [])]:
        if not Path(path).is_file():
            problems.append(f"training data not found: {path} (make it with `s3 train prepare`)")
    if not Path(job.rag_cache).is_file():
        problems.append(f"RAG cache not found: {job.rag_cache} (fill it with `s3 precompute`; the reward reads "
                        "acc_rag from it)")
    problems += _check_retriever(job.retriever, check_endpoints)
    try:
        from verl.utils.config import validate_config

        config = compose_config(job)
        validate_config(config, use_reference_policy=True, use_critic=True)
    except Exception as err:  # verl raises assertions and Hydra errors alike
        problems.append(f"verl config {job.preset} does not validate: {err}")
        config = None
    if importlib.util.find_spec("vllm") is None:
        problems.append("vLLM is not installed: verl's rollout needs it (on the GPU machine: "
                        "pip install \"verl[vllm]==0.9.1\")")
    if check_gpu:
        problems += _check_gpus(int(config.trainer.n_gpus_per_node) if config is not None else job.n_gpus or 1)
    if check_endpoints:
        problems += _check_generator(job.generator_url, job.generator_model)
    return problems


def _check_gpus(needed: int) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return [f"no CUDA GPU here (the preset needs {needed}); on a CPU, train small searchers with "
                "s3_agents.training.ppo.CpuPPO (notebooks/02_train_searcher.ipynb)"]
    if torch.cuda.device_count() < needed:
        return [f"{torch.cuda.device_count()} GPU(s) visible, the preset needs {needed} "
                "(--n-gpus or trainer.n_gpus_per_node)"]
    return []


def _check_retriever(location: str, check_endpoints: bool) -> list[str]:
    import httpx

    from s3_agents.errors import S3Error
    from s3_agents.retrievers import RemoteRetriever

    if location.startswith(("http://", "https://")):
        if not check_endpoints:
            return []
        remote = RemoteRetriever(location, retries=0, timeout=5)
        try:
            remote.health()
        except (S3Error, OSError, httpx.HTTPError) as err:
            return [f"retriever not reachable: {err}"]
        finally:
            remote.close()
        return []
    if not (Path(location) / "CURRENT").is_file():
        return [f"no index at {location} (build one with `s3 index build`, or give a retrieval-server URL)"]
    return []


def _check_generator(url: str, model: str) -> list[str]:
    from s3_agents.errors import S3Error
    from s3_agents.llm import OpenAICompatClient

    try:
        OpenAICompatClient(url, model, retries=0, timeout=5).check()
    except (S3Error, ValueError) as err:
        return [f"generator endpoint: {err}"]
    return []


def launch(job: TrainJob, *, dry_run: bool = False) -> int:
    """Check ``job``, write its agent-loop YAML, and run verl's PPO trainer (blocking).

    Returns:
        The trainer's exit code (0 for a dry run, which only prints the command).

    Raises:
        PreflightError: Listing everything that is missing, before anything starts.
    """
    problems = preflight(job, check_gpu=not dry_run, check_endpoints=not dry_run)
    if dry_run:
        problems = [p for p in problems if not p.startswith("vLLM is not installed")]
    if problems:
        raise PreflightError(problems)
    job.agent_loop_path.parent.mkdir(parents=True, exist_ok=True)
    job.agent_loop_path.write_text(yaml.safe_dump(job.agent_loop_config(), sort_keys=False))
    command = job.command()
    print(shlex.join(command), file=sys.stderr)
    if dry_run:
        return 0
    return subprocess.run(command, cwd=job.output_dir).returncode
