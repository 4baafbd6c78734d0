"""``s3 train local``: PPO in one process (CPU or one CUDA GPU) over the ``s3_searcher`` agent loop.

The same parquet rows and reward function as the verl path (``training/reward.py``), with
:class:`~s3_agents.training.ppo.CpuPPO` doing verl's PPO math. The rollouts come from an inference engine, as
in verl: on a CPU :class:`~s3_agents.training.llamacpp_rollout.LlamaCppRolloutServer` (the base GGUF plus the
live adapter as a GGUF LoRA, reloaded after every update, several episodes at once), or
:class:`~s3_agents.training.local_server.TransformersServer` (the torch model itself; the path on CUDA). A step
samples ``batch_size`` episodes (PPO: one per question; GRPO: ``group_size`` per question), scores each with
Gain Beyond RAG as soon as it ends, and updates the LoRA adapter (and, for PPO, the value head); the log-probs
PPO needs are recomputed in torch.

The run folder holds ``metrics.csv`` (one row per step), ``tensorboard/``, ``checkpoints/step_N/``
(adapter, optimiser and value-head state, RNG state; written to a temporary folder, then renamed, and
``checkpoints/latest`` updated last), ``adapter/`` (the final adapter) and ``reward.png``. A killed run
started again with the same folder resumes from the latest checkpoint.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from s3_agents._tasks import gather_bounded, run_sync
from s3_agents.errors import DataError, NoGPUError
from s3_agents.locks import atomic_path, fsync_dir, write_atomic
from s3_agents.training.settings import LocalSettings

if TYPE_CHECKING:
    from s3_agents.training.agent_loop import S3AgentLoop

__all__ = ["LocalSettings", "LocalRun", "read_rows", "plot_metrics", "METRIC_COLUMNS"]

METRIC_COLUMNS = ["step", "reward", "acc", "acc_rag", "in_context", "support_recall", "valid_action_rate", "searches",
                  "context_docs", "kl",
                  "pg_loss", "vf_loss", "entropy", "clipfrac", "grad_norm", "tokens", "generated_tokens",
                  "rollout_seconds", "reward_seconds", "update_seconds", "seconds", "trained_episodes"]
"""Columns of ``metrics.csv`` (and TensorBoard scalars, as ``train/<name>``)."""


_RESUMABLE = {"steps", "save_every", "engine", "contexts", "reward_concurrency", "bf16", "micro_batch_tokens"}
"""Settings a run may change when it resumes (how it runs, not what it learns)."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """verl parquet rows (``s3 train prepare``) as plain Python dicts (numpy arrays and scalars converted)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data not found: {path} (write it with `s3 train prepare`)")
    return [_plain(row) for row in pd.read_parquet(path).to_dict("records")]


def _plain(value: Any) -> Any:
    """numpy arrays and scalars from parquet rows as plain Python (the reward function takes JSON-like data)."""
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class LocalRun:
    """A resumable local PPO run.

    Args:
        out_dir: Run folder (see the module docstring).
        rows: Training rows as plain dicts (:func:`read_rows`).
        retriever: The training retriever (a :class:`~s3_agents.retrievers.Retriever`), or its location.
        reward_kwargs: Keyword arguments of :func:`s3_agents.training.reward.compute_score` (``generator_url``,
            ``generator_model``, ``rag_cache``, ``retriever``...).
        settings: The run's settings.
        model: Base model (hub id, folder, or ``None`` for SmolLM2 from its wheel).
        init_adapter: A LoRA adapter to start from (e.g. ``s3 train warmstart`` output); default: a fresh one.
        device: ``"cpu"`` or ``"cuda"``.
        base_gguf: The base model's GGUF for the llama.cpp engine (default: SmolLM2's when ``model`` is
            ``None``); it must hold the same weights as ``model``.

    Example:
        >>> reward = {"generator_url": URL, "generator_model": "smollm2", "rag_cache": "rag.sqlite"}
        >>> run = LocalRun("runs/ppo", read_rows("data/train.parquet"), retriever, reward)  # doctest: +SKIP
        >>> run.train()                                                                     # doctest: +SKIP
    """

    def __init__(self, out_dir: str | Path, rows: Sequence[dict[str, Any]], retriever: Any,
                 reward_kwargs: dict[str, Any], settings: LocalSettings | None = None, *, model: str | None = None,
                 init_adapter: str | Path | None = None, device: str = "cpu",
                 base_gguf: str | Path | None = None) -> None:
        if not rows:
            raise DataError("no training rows")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise NoGPUError("--device cuda: no CUDA GPU is visible to torch here")
        self.out = Path(out_dir)
        self.rows = list(rows)
        self.retriever = retriever
        self.reward_kwargs = dict(reward_kwargs)
        self.settings = settings or LocalSettings()
        self.model_name = model
        self.init_adapter = Path(init_adapter) if init_adapter else None
        self.device = device
        self.base_gguf = Path(base_gguf) if base_gguf else None
        if self.engine == "llama.cpp" and device != "cpu":
            raise ValueError("the llama.cpp rollout engine runs on the CPU: use engine transformers with --device cuda")
        if self.engine == "llama.cpp" and self._base_gguf() is None:
            raise ValueError("the llama.cpp rollout engine needs the base model's GGUF (--base-gguf) with --model")
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_settings()

    @property
    def engine(self) -> str:
        """The rollout engine this run uses (``settings.engine`` with ``"auto"`` resolved)."""
        if self.settings.engine != "auto":
            return self.settings.engine
        return "llama.cpp" if self.device == "cpu" and self._base_gguf() is not None else "transformers"

    def _base_gguf(self) -> Path | None:
        if self.base_gguf is not None:
            return self.base_gguf
        if self.model_name is None:
            from s3_agents.llm import smollm2_gguf_path

            return smollm2_gguf_path()
        return None

    def _check_settings(self) -> None:
        saved = self.out / "settings.json"
        current = asdict(self.settings) | {"model": self.model_name, "init_adapter": str(self.init_adapter or "")}
        if saved.is_file():
            before = json.loads(saved.read_text())
            changed = {k for k in current if k not in _RESUMABLE and k in before and before[k] != current[k]}
            if changed and (self.out / "checkpoints" / "latest").is_file():
                raise DataError(f"{self.out} holds a run with other settings ({', '.join(sorted(changed))}): "
                                 "use another --out or the same settings to resume it")
        saved.write_text(json.dumps(current, indent=1))

    def agent_loop(self, server: Any, tokenizer: Any) -> S3AgentLoop:
        """The ``s3_searcher`` loop of this run's episodes (its search, caps, budget rule and first prompt), on
        ``server`` (verl's ``generate``)."""
        from s3_agents.training.agent_loop import S3AgentLoop

        s = self.settings
        return S3AgentLoop.standalone(server, tokenizer, retriever=self.retriever, response_length=s.response_length,
                                      search=s.search, max_turn_tokens=s.max_turn_tokens,
                                      max_obs_tokens=s.max_obs_tokens, constrained=s.constrained,
                                      query_spans=s.query_spans, max_context_docs=s.max_context_docs,
                                      fill_context=s.fill_context, initial_k=s.initial_k)

    # -- model, checkpoint -----------------------------------------------------------------------
    def _load(self) -> tuple[Any, Any, Any, int]:
        from peft import PeftModel

        from s3_agents.training.local_server import load_policy_model
        from s3_agents.training.ppo import CpuPPO, PPOSettings
        from s3_agents.training.warmstart import lora_model

        s = self.settings
        base, tokenizer = load_policy_model(self.model_name)
        latest = self._latest()
        start = latest or self.init_adapter
        if start is not None:
            model = PeftModel.from_pretrained(base, str(start / "adapter" if latest else start), is_trainable=True)
        else:
            model = lora_model(base)
        reference = None
        if s.kl_reference == "init" and self.init_adapter is not None:
            reference = "kl_reference"                  # the warm start, frozen beside the trained adapter
            model.load_adapter(str(self.init_adapter), adapter_name=reference, is_trainable=False)
        model.to(self.device).eval()
        ppo = CpuPPO(model, PPOSettings(actor_lr=s.actor_lr, critic_lr=s.critic_lr, kl_coef=s.kl_coef,
                                        entropy_coeff=s.entropy_coeff, temperature=s.temperature, bf16=s.bf16,
                                        micro_batch_tokens=s.micro_batch_tokens,
                                        algorithm="gae" if s.algorithm == "ppo" else "grpo"),
                     ref_adapter=reference, tokenizer=tokenizer)
        step = 0
        if latest is not None:
            state = torch.load(latest / "trainer.pt", map_location=self.device, weights_only=False)
            ppo.load_state_dict(state["ppo"])
            random.setstate(state["python_rng"])
            torch.set_rng_state(state["torch_rng"])
            step = int(state["step"])
        return model, tokenizer, ppo, step

    def _latest(self) -> Path | None:
        pointer = self.out / "checkpoints" / "latest"
        if not pointer.is_file():
            return None
        path = self.out / "checkpoints" / pointer.read_text().strip()
        return path if (path / "trainer.pt").is_file() else None

    def _save(self, model: Any, ppo: Any, step: int) -> Path:
        root = self.out / "checkpoints"
        final, tmp = root / f"step_{step}", root / f".step_{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(str(tmp / "adapter"), selected_adapters=[model.active_adapter])
        torch.save({"ppo": ppo.state_dict(), "step": step, "python_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state()}, tmp / "trainer.pt")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        fsync_dir(root)
        write_atomic(root / "latest", final.name.encode())
        for old in sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-2]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    # -- one step --------------------------------------------------------------------------------
    def _batch(self, step: int) -> list[tuple[int, dict[str, Any]]]:
        """The step's episodes as (row index, row): ``batch_size`` questions, or for GRPO ``batch_size /
        group_size`` questions each ``group_size`` times in a row."""
        s = self.settings
        repeat = s.group_size if s.algorithm == "grpo" else 1
        questions = s.batch_size // repeat
        order = list(range(len(self.rows)))
        epoch, offset = divmod(step * questions, len(order))
        random.Random(s.seed + epoch).shuffle(order)
        picked = [order[(offset + i) % len(order)] for i in range(questions)]
        return [(i, self.rows[i]) for i in picked for _ in range(repeat)]

    async def _episodes(self, loop: Any, rows: list[tuple[int, dict[str, Any]]], concurrency: int
                        ) -> list[tuple[Any, dict[str, Any]]]:
        """Run the episodes, ``concurrency`` at a time, each scored by Gain Beyond RAG as soon as it ends.

        An episode frees its rollout slot when it ends, so the next one starts while the generator answers for
        it: up to ``settings.reward_concurrency`` reward requests go to the generator together.
        """
        from s3_agents.training.reward import compute_score

        s = self.settings
        sampling = {"temperature": s.temperature, "top_p": s.top_p}
        rolling, scoring = asyncio.Semaphore(concurrency), asyncio.Semaphore(s.reward_concurrency)

        async def one(index: int, row: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            async with rolling:
                output = await loop.run(sampling, **row)
            info = {**(row.get("extra_info") or {}), **output.extra_fields}
            async with scoring:
                started = time.perf_counter()
                score = await compute_score(row.get("data_source", ""), "", row["reward_model"]["ground_truth"],
                                            info, variant=s.variant, judge=s.judge, **self.reward_kwargs)
                score["reward_seconds"] = time.perf_counter() - started
            score["group"] = index
            return output, score

        return await gather_bounded(one(i, row) for i, row in rows)

    def _trainable(self, episodes: list[tuple[Any, dict[str, Any]]], grammar: str | None) -> list[Any]:
        """The step's episodes as :class:`Rollout` s for the update (with ``drop_uniform_groups``, only the GRPO
        groups whose rewards differ)."""
        from s3_agents.training.ppo import Rollout, disagreeing_groups

        rollouts = [Rollout.from_output(o, score["score"], grammar, score["group"]) for o, score in episodes]
        if self.settings.algorithm == "grpo" and self.settings.drop_uniform_groups:
            return disagreeing_groups(rollouts)
        return rollouts

    def _rollout_server(self, model: Any, tokenizer: Any, step: int) -> Any:
        seed = self.settings.seed + 1000 * step
        if self.engine == "transformers":
            from s3_agents.training.local_server import TransformersServer

            return TransformersServer(model, tokenizer, seed=seed)
        from s3_agents.training.llamacpp_rollout import LlamaCppRolloutServer

        server = LlamaCppRolloutServer(self._base_gguf(), tokenizer, contexts=self.settings.contexts, seed=seed,
                                       n_ctx=max(4096, self.settings.response_length + 2048))
        server.load_adapter(model)
        return server

    def train(self, *, progress: bool = True, max_seconds: float | None = None) -> dict[str, Any]:
        """Run (or resume) up to ``settings.steps`` steps; returns the last step's metrics.

        Args:
            progress: Show a progress bar.
            max_seconds: Also stop after the first step that ends this many seconds after the call began (a
                wall-clock budget; a checkpoint is written there, so the run resumes from it).

        Returns:
            The last row of ``metrics.csv`` as a dict (empty when nothing was left to do).
        """
        return run_sync(self.atrain(progress=progress, max_seconds=max_seconds))

    async def atrain(self, *, progress: bool = True, max_seconds: float | None = None) -> dict[str, Any]:
        """:meth:`train` from a running event loop (a notebook: ``await run.atrain()``)."""
        began = time.perf_counter()
        from tqdm.auto import tqdm

        from s3_agents.protocol import action_grammar

        s = self.settings
        model, tokenizer, ppo, step = self._load()
        if step >= s.steps:
            return {}
        torch.manual_seed(s.seed + step)
        server = self._rollout_server(model, tokenizer, step)
        concurrency = s.contexts if self.engine == "llama.cpp" else 1
        loop = self.agent_loop(server, tokenizer)
        grammar = action_grammar(loop.search_config) if s.constrained else None
        writer = _tensorboard(self.out / "tensorboard")
        last: dict[str, Any] = {}
        bar = tqdm(total=s.steps, initial=step, desc=f"{s.algorithm.upper()} steps", disable=not progress)
        try:
            while step < s.steps:
                started = time.perf_counter()
                model.eval()
                episodes = await self._episodes(loop, self._batch(step), concurrency)
                rollout_done = time.perf_counter()
                rollouts = self._trainable(episodes, grammar)
                update = ppo.step(rollouts) if rollouts else {}
                if rollouts and hasattr(server, "load_adapter"):
                    server.load_adapter(model)             # the next step samples from the updated policy
                step += 1
                last = _metrics(step, episodes, update, started, rollout_done) | {"trained_episodes": len(rollouts)}
                self._append(last)
                if writer is not None:
                    for name, value in last.items():
                        if name != "step":
                            writer.add_scalar(f"train/{name}", value, step)
                    writer.flush()
                out_of_time = max_seconds is not None and time.perf_counter() - began >= max_seconds
                if step % s.save_every == 0 or step == s.steps or out_of_time:
                    self._save(model, ppo, step)
                bar.update(1)
                bar.set_postfix(reward=f"{last['reward']:.2f}", acc=f"{last['acc']:.2f}",
                                valid=f"{last['valid_action_rate']:.2f}")
                if out_of_time:
                    break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            if hasattr(server, "close"):
                server.close()
        model.save_pretrained(str(self.out / "adapter"), selected_adapters=[model.active_adapter])
        tokenizer.save_pretrained(str(self.out / "adapter"))
        plot_metrics(self.out / "metrics.csv", self.out / "reward.png", algorithm=s.algorithm)
        return last

    def _append(self, row: dict[str, Any]) -> None:
        path = self.out / "metrics.csv"
        rows = _read_csv(path) if path.is_file() else []
        rows = [r for r in rows if int(r["step"]) < row["step"]] + [row]   # a resumed step replaces its old row
        with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in METRIC_COLUMNS})


def _metrics(step: int, episodes: list[tuple[Any, dict[str, Any]]], update: dict[str, float], started: float,
             rollout_done: float) -> dict[str, Any]:
    n = len(episodes)
    fields = [o.extra_fields for o, _ in episodes]
    generations = sum(max(1, int(f.get("s3_generations", 0))) for f in fields)
    invalid = sum(int(f.get("s3_invalid", 0)) for f in fields)
    now = time.perf_counter()
    return {
        "step": step,
        "reward": sum(sc["score"] for _, sc in episodes) / n,
        "acc": sum(sc["acc"] for _, sc in episodes) / n,
        "acc_rag": sum(sc["acc_rag"] for _, sc in episodes) / n,
        "in_context": sum(sc["in_context"] for _, sc in episodes) / n,
        "support_recall": sum(sc["support_recall"] for _, sc in episodes) / n,
        "valid_action_rate": 1.0 - invalid / generations,
        "searches": sum(int(f.get("s3_searches", 0)) for f in fields) / n,
        "context_docs": sum(len(f.get("s3_context", [])) for f in fields) / n,
        "kl": update.get("actor/reward_kl_penalty", 0.0),
        "pg_loss": update.get("actor/pg_loss", 0.0),
        "vf_loss": update.get("critic/vf_loss", 0.0),
        "entropy": update.get("actor/entropy", 0.0),
        "clipfrac": update.get("actor/pg_clipfrac", 0.0),
        "grad_norm": update.get("actor/grad_norm", 0.0),
        "tokens": sum(len(o.prompt_ids) + len(o.response_ids) for o, _ in episodes),
        "generated_tokens": sum(sum(o.response_mask) for o, _ in episodes),
        "rollout_seconds": round(rollout_done - started, 2),
        "reward_seconds": round(sum(sc.get("reward_seconds", 0.0) for _, sc in episodes), 2),
        "update_seconds": round(now - rollout_done, 2),
        "seconds": round(now - started, 2),
    }


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def plot_metrics(csv_path: str | Path, out: str | Path, *, window: int = 5, algorithm: str = "ppo") -> Path | None:
    """Reward, accuracy and naive-RAG accuracy per step (with a moving average), and KL / valid actions; the steps
    are named after ``algorithm`` ("ppo" or "grpo").

    Returns:
        The PNG path, or ``None`` when there is nothing to plot or matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = _read_csv(Path(csv_path)) if Path(csv_path).is_file() else []
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]

    def series(name: str) -> list[float]:
        return [float(r.get(name) or "nan") for r in rows]         # blank: a column older runs did not write

    def smooth(values: list[float]) -> list[float]:
        return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                for i in range(len(values))]

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, color in (("reward", "C0"), ("acc", "C2"), ("acc_rag", "C7"), ("in_context", "C3")):
        values = series(name)
        if all(math.isnan(v) for v in values):
            continue                                 # not measured: the generator's accuracy under a context reward
        left.plot(steps, values, color=color, alpha=0.3)
        left.plot(steps, smooth(values), color=color, label=f"{name} ({window}-step mean)")
    left.axhline(0, color="black", linewidth=0.5)
    left.set_xlabel(f"{algorithm.upper()} step")
    left.set_title("Reward, generator accuracy and answer in context")
    left.legend()
    right.plot(steps, series("valid_action_rate"), label="valid-action rate", color="C1")
    right.plot(steps, series("searches"), label="searches / episode", color="C4")
    right.set_xlabel(f"{algorithm.upper()} step")
    right.set_title("Searcher behaviour")
    right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
