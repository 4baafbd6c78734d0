"""Grammar-constrained decoding for transformers models, with llguidance as the grammar engine.

llguidance (the engine behind llama.cpp's and vLLM's llguidance backends) compiles a GBNF grammar and,
token by token, says which tokens may come next. :class:`GrammarLogitsProcessor` hands that to
transformers' ``generate``; :func:`grammar_token_masks` replays a generated sequence and returns the
allowed-token mask at each step, which training uses to score constrained samples under the
distribution they were drawn from (docs/training.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["GrammarLogitsProcessor", "grammar_token_masks", "grammar_matcher"]


@functools.lru_cache(maxsize=8)
def _lltokenizer(tokenizer: Any) -> Any:
    try:
        import llguidance
    except ImportError as err:
        raise ImportError('constrained decoding with transformers needs llguidance: pip install "s3-agents[grammar]"'
                          ) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("constrained decoding needs a fast (Rust) Hugging Face tokenizer")
    eos = sorted({t for t in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                  if isinstance(t, int) and t != tokenizer.unk_token_id})
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    # Tokenizers converted from GGUF (SmolLM2 from its wheel) chain a ByteFallback decoder before the
    # byte-level one; llguidance then reads byte-level tokens ("Ċ" for a newline) as raw bytes. A
    # byte-level pre-tokenizer means byte-level tokens: say so with the plain ByteLevel decoder.
    if (spec.get("pre_tokenizer") or {}).get("type") == "ByteLevel":
        spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
    spec["padding"] = spec["truncation"] = None
    return llguidance.LLTokenizer(json.dumps(spec), n_vocab=len(tokenizer), eos_token=eos or None)


@functools.lru_cache(maxsize=32)
def _compiled(grammar: str) -> str:
    import llguidance

    return llguidance.grammar_from("gbnf", grammar)


def grammar_matcher(tokenizer: Any, grammar: str) -> Any:
    """A fresh ``llguidance.LLMatcher`` for ``grammar`` (GBNF) over a Hugging Face fast tokenizer.

    Raises:
        ValueError: If the grammar does not compile (with llguidance's message).
    """
    import llguidance

    matcher = llguidance.LLMatcher(_lltokenizer(tokenizer), _compiled(grammar), log_level=0)
    if matcher.is_error():
        raise ValueError(f"grammar does not compile: {matcher.get_error()}")
    return matcher


def _allowed(matcher: Any, vocab_size: int) -> Any:
    """The tokens ``matcher`` allows next, as a bool tensor of ``vocab_size``."""
    import llguidance.torch
    import torch

    bitmask = llguidance.torch.allocate_token_bitmask(1, vocab_size)
    llguidance.torch.fill_next_token_bitmask(matcher, bitmask)
    bits = (bitmask[0].unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.flatten()[:vocab_size].bool()


class GrammarLogitsProcessor:
    """A transformers logits processor that allows only tokens the grammar accepts (batch size 1).

    Args:
        tokenizer: The model's (fast) tokenizer.
        grammar: GBNF text, e.g. :func:`~s3_agents.protocol.grammar.action_grammar`.

    Example:
        >>> from transformers import LogitsProcessorList
        >>> processor = GrammarLogitsProcessor(tokenizer, action_grammar())                  # doctest: +SKIP
        >>> model.generate(ids, logits_processor=LogitsProcessorList([processor]))           # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        self.matcher = grammar_matcher(tokenizer, grammar)
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != 1:
            raise ValueError("GrammarLogitsProcessor constrains one sequence at a time")
        if self._started and not self.matcher.consume_token(int(input_ids[0, -1])):
            raise RuntimeError(f"the grammar rejected a token it had allowed: {self.matcher.get_error()}")
        self._started = True
        allowed = _allowed(self.matcher, scores.shape[-1]).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))


def grammar_token_masks(tokenizer: Any, grammar: str, token_ids: Sequence[int], vocab_size: int) -> Any:
    """The allowed-token mask before each of ``token_ids`` when they were generated under ``grammar``.

    Returns:
        A bool tensor ``(len(token_ids), vocab_size)``. Steps after the grammar rejected a token (a turn
        generated without the grammar) allow every token.
    """
    import torch

    matcher = grammar_matcher(tokenizer, grammar)
    masks = torch.ones(len(token_ids), vocab_size, dtype=torch.bool)
    for step, token in enumerate(token_ids):
        if matcher.is_stopped():
            break
        masks[step] = _allowed(matcher, vocab_size)
        if not masks[step, int(token)] or not matcher.consume_token(int(token)):
            masks[step] = True
            break
    return masks
