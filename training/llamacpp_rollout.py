"""Rollouts on llama.cpp: verl's token-in/token-out ``generate`` served by llama.cpp contexts in this process.

verl samples with an inference engine (vLLM) and recomputes log-probs in the training engine; on a CPU
:class:`LlamaCppRolloutServer` is that inference engine. It runs the base GGUF with the policy's current LoRA
adapter applied at run time (written as a GGUF LoRA after every update, :meth:`load_adapter`), in several
llama.cpp contexts so that several episodes generate at once. An episode keeps its context between turns
(its ``request_id`` is sticky), so each turn only evaluates the tokens appended since the last one.

What it samples from is not exactly the torch policy: the base weights are the same numbers (transformers
dequantises the same GGUF), but llama.cpp multiplies quantised weights with 8-bit quantised activations.
PPO stays correct because it never uses the engine's probabilities: old, new and reference log-probs all
come from torch (docs/training.md, "Rollouts on llama.cpp").
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verl.workers.rollout.replica import TokenOutput

from s3_agents.llm.local import llama_grammar
from s3_agents.training.local_server import drop_stop_tokens
from s3_agents.training.policy import turn_closing_ids

__all__ = ["LlamaCppRolloutServer", "peft_state_as_gguf_lora"]


def peft_state_as_gguf_lora(model: Any, base_gguf: str | Path, out: str | Path) -> Path:
    """Write the LoRA adapter of a peft ``model`` (in memory, as it is now) as a GGUF LoRA for ``base_gguf``."""
    import torch
    from peft import get_peft_model_state_dict

    from s3_agents.llm.gguf_lora import check_lora_config, write_gguf_lora_tensors

    config = model.peft_config[model.active_adapter]
    check_lora_config(config.to_dict(), f"the adapter of {type(model).__name__}")
    state = get_peft_model_state_dict(model, adapter_name=model.active_adapter)  # not a frozen KL reference
    tensors = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in state.items()}
    return write_gguf_lora_tensors(tensors, float(config.lora_alpha), base_gguf, out, source=str(model.active_adapter))


class _Slot:
    """One llama.cpp context (a ``Llama`` over the memory-mapped base) and the adapter applied to it."""

    def __init__(self, base_gguf: Path, n_ctx: int, threads: int, logits_all: bool = False) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(base_gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         logits_all=logits_all, verbose=False)
        self.adapter: Any = None

    def apply(self, path: Path | None) -> None:
        import llama_cpp

        new = None
        if path is not None:
            new = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode("utf-8"))
            if not new:
                raise RuntimeError(f"llama.cpp could not load the GGUF LoRA {path}")
        if new is None:
            failed = llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        else:
            failed = llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(
                new), 1, (ctypes.c_float * 1)(1.0))
        if failed:
            if new is not None:
                llama_cpp.llama_adapter_lora_free(new)
            raise RuntimeError(f"llama.cpp could not apply the GGUF LoRA {path}")
        if self.adapter is not None:
            llama_cpp.llama_adapter_lora_free(self.adapter)
        self.adapter = new
        self.llm.reset()               # cached keys and values were computed under the old weights

    def close(self) -> None:
        import llama_cpp

        if self.adapter is not None:
            llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
            llama_cpp.llama_adapter_lora_free(self.adapter)
            self.adapter = None
        self.llm.close()


class LlamaCppRolloutServer:
    """verl's rollout ``generate`` on llama.cpp: the base GGUF plus the policy's current LoRA, ``contexts`` at once.

    Honours ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``stop`` (with
    ``include_stop_str_in_output``) and ``grammar`` (GBNF, enforced by llama.cpp's grammar sampler), and stops
    at the chat template's end-of-turn token, as :class:`~s3_agents.training.local_server.TransformersServer`
    does. Log-probs are not returned: the trainer recomputes them in torch.

    Args:
        base_gguf: The base model's GGUF (the one the torch policy was loaded from).
        tokenizer: The policy's tokenizer (for the end-of-turn ids and stop strings).
        contexts: Episodes that generate at once, each in its own context.
        threads: CPU threads per context (default: the cores shared out among the contexts).
        n_ctx: Context window of each context, in tokens.
        seed: Sampling seed (the ``n``-th call samples with ``seed + n``: reproducible with one context; with
            several, calls arrive in an order that timing decides, so a rerun draws other samples).

    Example:
        >>> server = LlamaCppRolloutServer(smollm2_gguf_path(), tokenizer, contexts=2)        # doctest: +SKIP
        >>> server.load_adapter(peft_model)               # after every PPO update           # doctest: +SKIP
        >>> out = await server.generate("ep-1", prompt_ids=ids, sampling_params={"temperature": 0.6})  # doctest: +SKIP
    """

    def __init__(self, base_gguf: str | Path, tokenizer: Any, *, contexts: int = 2, threads: int | None = None,
                 n_ctx: int = 4096, seed: int | None = 0) -> None:
        if contexts < 1:
            raise ValueError("contexts must be >= 1")
        self.base_gguf = Path(base_gguf)
        if not self.base_gguf.is_file():
            raise FileNotFoundError(f"base GGUF not found: {self.base_gguf}")
        self.tokenizer = tokenizer
        threads = threads or max(1, (os.cpu_count() or 1) // contexts)
        self._slots = [_Slot(self.base_gguf, n_ctx, threads) for _ in range(contexts)]
        closing = turn_closing_ids(tokenizer)
        self.eos_ids = sorted({t for t in closing[:1] + [tokenizer.eos_token_id] if t is not None})
        self.seed = seed
        self.calls = 0
        self.adapter_version = 0
        self._free = list(range(contexts))
        self._sticky: OrderedDict[str, int] = OrderedDict()
        self._cond = threading.Condition()
        self._workdir = tempfile.TemporaryDirectory(prefix="s3-rollout-lora-")
        self._n_ctx, self._threads = n_ctx, threads
        self._adapter_path: Path | None = None
        self._scorer: _Slot | None = None

    @property
    def contexts(self) -> int:
        """How many episodes can generate at once."""
        return len(self._slots)

    def load_adapter(self, adapter: Any) -> Path | None:
        """Apply a LoRA to every context: a peft model (its adapter as it is now), a peft adapter folder, a GGUF
        LoRA file, or ``None`` for the base model alone. Call it after every update; waits for running calls.

        Returns:
            The GGUF LoRA file applied (``None`` for the base model).
        """
        path: Path | None
        if adapter is None:
            path = None
        elif isinstance(adapter, str | Path) and Path(adapter).suffix == ".gguf":
            path = Path(adapter)
        else:
            self.adapter_version += 1
            path = Path(self._workdir.name) / f"adapter-{self.adapter_version}.gguf"
            if isinstance(adapter, str | Path):
                from s3_agents.llm.gguf_lora import write_gguf_lora

                write_gguf_lora(adapter, self.base_gguf, path)
            else:
                peft_state_as_gguf_lora(adapter, self.base_gguf, path)
        with self._cond:
            self._cond.wait_for(lambda: len(self._free) == len(self._slots))
            for slot in self._slots:
                slot.apply(path)
            if self._scorer is not None:
                self._scorer.apply(path)
            self._adapter_path = path
            self._sticky.clear()
        for old in Path(self._workdir.name).glob("adapter-*.gguf"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def _acquire(self, request_id: str) -> tuple[int, int]:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._free))
            wanted = self._sticky.get(request_id)
            index = wanted if wanted in self._free else self._free[0]
            self._free.remove(index)
            self._sticky[request_id] = index
            self._sticky.move_to_end(request_id)
            while len(self._sticky) > 4 * len(self._slots):
                self._sticky.popitem(last=False)
            self.calls += 1
            return index, self.calls

    def _release(self, index: int) -> None:
        with self._cond:
            self._free.append(index)
            self._cond.notify_all()

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        """Generate from ``prompt_ids`` in a free context (the episode's own when it is free); returns the new ids."""
        return await asyncio.to_thread(self._generate, request_id, list(prompt_ids), dict(sampling_params))

    def _generate(self, request_id: str, prompt_ids: list[int], params: dict[str, Any]) -> TokenOutput:
        max_tokens = int(params.get("max_tokens", 256))
        temperature = float(params.get("temperature", 0.0) or 0.0)
        top_k = int(params.get("top_k", -1) or -1)
        stops = list(params.get("stop") or [])
        index, call = self._acquire(request_id)
        try:
            llm = self._slots[index].llm
            if self.seed is not None:
                llm.set_seed(self.seed + call)
            new: list[int] = []
            tokens = llm.generate(prompt_ids, temp=temperature, top_p=float(params.get("top_p", 1.0) or 1.0),
                                  top_k=max(top_k, 0), min_p=0.0, typical_p=1.0, repeat_penalty=1.0,
                                  grammar=llama_grammar(params["grammar"]) if params.get("grammar") else None)
            for token in tokens:
                new.append(int(token))
                if token in self.eos_ids or len(new) >= max_tokens or (stops and _ends_with_stop(
                        self.tokenizer, new, stops)):
                    break
            tokens.close()
        finally:
            self._release(index)
        if stops and not params.get("include_stop_str_in_output", False):
            drop_stop_tokens(self.tokenizer, new, [], stops)
        return TokenOutput(token_ids=new, log_probs=None, stop_reason="completed")

    def log_probs(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        """The engine's own log-probabilities (temperature 1, no grammar) of ``completion_ids`` after
        ``prompt_ids``, under the adapter applied now: what the sampler's distribution was built from, to
        measure its gap to the torch policy (the trainer never uses them)."""
        import numpy as np

        with self._cond:
            if self._scorer is None:
                self._scorer = _Slot(self.base_gguf, self._n_ctx, self._threads, logits_all=True)
                self._scorer.apply(self._adapter_path)
            llm = self._scorer.llm
            llm.reset()
            llm.eval(list(prompt_ids) + list(completion_ids))
            rows = np.asarray(llm.scores[len(prompt_ids) - 1:len(prompt_ids) - 1 + len(completion_ids)], np.float64)
        top = rows.max(-1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(rows - top).sum(-1))
        return [float(rows[i, t] - log_norm[i]) for i, t in enumerate(completion_ids)]

    def close(self) -> None:
        """Free the contexts and the adapters."""
        for slot in self._slots + ([self._scorer] if self._scorer else []):
            slot.close()
        self._slots, self._scorer = [], None
        self._workdir.cleanup()


def _ends_with_stop(tokenizer: Any, ids: Sequence[int], stops: Sequence[str]) -> bool:
    tail = tokenizer.decode(list(ids[-16:]), skip_special_tokens=True)
    return any(s in tail for s in stops)
