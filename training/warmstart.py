"""Warm start: supervised fine-tuning of the searcher's LoRA adapter on trajectories, with transformers' Trainer.

The loss covers only the searcher's own tokens: labels are the token ids where the trajectory's state
mask is 1 (what PPO trains) and -100 on the prompt and on every inserted document or feedback text.
The model is wrapped in a peft LoRA adapter; only the adapter is trained and saved (a few MB).
Checkpoints are the Trainer's own, so an interrupted warm start resumes where it stopped.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from s3_agents.errors import DataError
from s3_agents.training.trajectories import Trajectory

__all__ = ["LoraSettings", "WarmstartSettings", "lora_model", "sft_features", "masked_loss", "warmstart",
           "bf16_available", "drop_autocast_wrapper"]

@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter: rank, scale, dropout, and which layers get one (peft's ``target_modules``: module names,
    or ``"all-linear"``: every linear layer but the output head, which for SmolLM2 and other Llama-style models
    is the attention and MLP projections)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"


@dataclass(frozen=True)
class WarmstartSettings:
    """Supervised warm-start settings.

    Attributes:
        epochs: Passes over the trajectories.
        learning_rate: AdamW learning rate of the adapter.
        grad_accum: Trajectories per optimiser step (one trajectory per forward pass).
        max_length: Longest sequence in tokens (longer trajectories are cut at the end).
        bf16: bfloat16 autocast (default: where the device supports it).
        save_steps: Optimiser steps between checkpoints.
        max_steps: Stop after this many optimiser steps (``None``: the whole ``epochs``).
        seed: Data order and adapter init.
    """

    epochs: float = 1.0
    learning_rate: float = 2e-4
    grad_accum: int = 4
    max_length: int = 3072
    bf16: bool | None = None
    save_steps: int = 20
    max_steps: int | None = None
    seed: int = 0


def bf16_available(device: str = "cpu") -> bool:
    """Whether bfloat16 autocast is fast here: a CUDA GPU with bf16, or a CPU with AVX-512 BF16 / AMX."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def drop_autocast_wrapper(model: Any) -> Any:
    """``model`` with the mixed-precision ``forward`` wrapper that accelerate puts on a model it trains undone.

    ``Trainer(bf16=True)`` replaces the model's ``forward`` with one that runs under bf16 autocast and casts the
    outputs back to fp32, and leaves it there after training: every later use of the same object (PPO's
    reference and old log-probs, evaluation) would silently compute in bf16. A model without the wrapper is
    returned as it is.
    """
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    bound = model.__dict__.get("forward")          # accelerate re-binds the class's own forward on the instance
    if getattr(bound, "__func__", None) is type(model).forward:
        del model.__dict__["forward"]
    return model


def lora_model(model: Any, settings: LoraSettings | None = None) -> Any:
    """``model`` with a trainable LoRA adapter (a peft ``PeftModel``); a PeftModel is returned as it is.

    Example:
        >>> peft_model = lora_model(model)                        # doctest: +SKIP
        >>> peft_model.print_trainable_parameters()              # doctest: +SKIP
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(model, PeftModel):
        return model
    s = settings or LoraSettings()
    targets = s.target_modules if isinstance(s.target_modules, str) else list(s.target_modules)
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def sft_features(trajectory: Trajectory, max_length: int | None = None) -> dict[str, list[int]]:
    """``input_ids`` (prompt + response) and ``labels`` (the ids where the mask is 1, else -100)."""
    if len(trajectory.response_ids) != len(trajectory.response_mask):
        raise ValueError("a trajectory's response_ids and response_mask differ in length")
    ids = list(trajectory.prompt_ids) + list(trajectory.response_ids)
    labels = [-100] * len(trajectory.prompt_ids) + [t if m else -100 for t, m in
                                                     zip(trajectory.response_ids, trajectory.response_mask)]
    if max_length:
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}


def masked_loss(model: Any, features: Sequence[dict[str, list[int]]]) -> float:
    """Mean cross-entropy over labelled tokens (all examples' tokens weigh the same), without gradients."""
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for f in features:
            ids = torch.tensor([f["input_ids"]], device=device)
            labels = torch.tensor([f["labels"]], device=device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    return total / max(count, 1)


def warmstart(model: Any, tokenizer: Any, trajectories: Sequence[Trajectory], out_dir: str | Path, *,
              settings: WarmstartSettings | None = None, lora: LoraSettings | None = None,
              device: str = "cpu", resume: bool = True) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on ``trajectories`` (loss on the searcher's tokens only) and save it.

    Args:
        model: The base causal LM (or a PeftModel to keep training).
        tokenizer: Its tokenizer (saved beside the adapter).
        trajectories: From :mod:`s3_agents.training.trajectories`.
        out_dir: Run folder: ``checkpoints/`` (Trainer checkpoints, resumed from; TensorBoard logs in
            ``checkpoints/runs/``), ``adapter/`` (the result), ``loss.csv`` (step, loss, learning rate).
        settings: Training settings.
        lora: Adapter shape (ignored when ``model`` already has one).
        device: ``"cpu"`` or ``"cuda"``.
        resume: Continue from the latest checkpoint in ``out_dir`` if there is one.

    Returns:
        ``{"adapter": path, "train_loss", "steps", "trajectories", "loss_before", "loss_after"}`` (the masked
        loss on the first 32 trajectories before and after training).

    Example:
        >>> model, tokenizer = load_policy_model()                                              # doctest: +SKIP
        >>> warmstart(model, tokenizer, trajectories, "runs/warmstart")["adapter"]              # doctest: +SKIP
        PosixPath('runs/warmstart/adapter')
    """
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    if not trajectories:
        raise DataError("no trajectories to train on")
    s = settings or WarmstartSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    features = [sft_features(t, s.max_length) for t in trajectories]
    features = [f for f in features if any(label != -100 for label in f["labels"])]
    if not features:
        raise DataError("no trajectory has a searcher token to train on")
    torch.manual_seed(s.seed)
    peft_model = lora_model(model, lora).to(device)
    probe = features[:32]        # the loss before and after, on the first 32 (a whole pass costs as much as training)
    loss_before = masked_loss(peft_model.eval(), probe)
    bf16 = bf16_available(device) if s.bf16 is None else s.bf16
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=s.epochs, per_device_train_batch_size=1,
        gradient_accumulation_steps=s.grad_accum, learning_rate=s.learning_rate, lr_scheduler_type="constant",
        max_steps=s.max_steps if s.max_steps else -1,
        logging_steps=1, save_strategy="steps", save_steps=s.save_steps, save_total_limit=2, seed=s.seed,
        data_seed=s.seed, bf16=bf16, use_cpu=device == "cpu", report_to=["tensorboard"],
        remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=False)
    # A list of feature dicts is a dataset to the Trainer; transformers' seq2seq collator pads the ids and
    # pads the labels with -100, so padding is never learned (which token pads does not matter: a tokenizer
    # without one, as read from a GGUF file, pads with its end token in a copy).
    padder = tokenizer
    if tokenizer.pad_token is None:
        padder = copy.deepcopy(tokenizer)
        padder.pad_token = tokenizer.eos_token
    trainer = Trainer(model=peft_model, args=args, train_dataset=features,
                      data_collator=DataCollatorForSeq2Seq(padder, label_pad_token_id=-100))
    last = get_last_checkpoint(str(out / "checkpoints")) if resume and (out / "checkpoints").is_dir() else None
    try:
        result = trainer.train(resume_from_checkpoint=last)
    finally:
        drop_autocast_wrapper(peft_model)       # the caller's model computes in fp32 again
    peft_model.eval()
    adapter = out / "adapter"
    peft_model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    _write_loss_csv(out / "loss.csv", trainer.state.log_history)
    summary = {"adapter": adapter, "train_loss": float(result.training_loss), "steps": int(trainer.state.global_step),
               "trajectories": len(features), "loss_before": loss_before,
               "loss_after": masked_loss(peft_model, probe), "settings": asdict(s)}
    (out / "summary.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                  for k, v in summary.items()}, indent=1))
    return summary


def _write_loss_csv(path: Path, history: Sequence[dict[str, Any]]) -> None:
    rows = [h for h in history if "loss" in h]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "epoch", "loss", "learning_rate"])
        for h in rows:
            writer.writerow([h.get("step"), h.get("epoch"), h.get("loss"), h.get("learning_rate")])
