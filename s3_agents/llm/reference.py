"""The s3 reference code's input format, for checkpoints trained with it (``pat-jj/s3-8-3-3-20steps``).

The reference renders only the first user message with the chat template (with the generation prompt), then
appends every searcher output and every observation to that one assistant turn: no chat boundaries, each piece
tokenized on its own and the ids concatenated (spec 1.1-1.4). :class:`ReferenceFormatClient` rebuilds that id
sequence from the search graph's messages and sends it as token ids to a completions endpoint (vLLM, llama.cpp
server) or an in-process model, so the model sees exactly the ids it was trained on. Pair it with
``SearchConfig(prompt_format="reference")``, which makes the graph write the reference's observation and
feedback texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s3_agents.llm.base import ChatClient, Completion, Message
from s3_agents.llm.gguf_cache import gguf_transformers_dir

__all__ = ["ReferenceFormatClient", "load_tokenizer"]


def load_tokenizer(spec: str | Path) -> Any:
    """A transformers tokenizer: a hub id or folder, or a ``.gguf`` file (its vocabulary and chat template,
    through the cached folder of :func:`~s3_agents.llm.gguf_cache.gguf_transformers_dir`)."""
    from transformers import AutoTokenizer

    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer GGUF file not found: {path}")
        return AutoTokenizer.from_pretrained(gguf_transformers_dir(path))
    return AutoTokenizer.from_pretrained(str(spec))


class ReferenceFormatClient:
    """A policy client that sends the searcher's episode in the reference format, as token ids.

    Args:
        client: What generates: any client whose ``complete`` takes token ids (:class:`OpenAICompatClient`
            for vLLM / llama.cpp, :class:`LlamaCppClient`, :class:`TransformersClient`).
        tokenizer: The policy's tokenizer (a transformers tokenizer, or what :func:`load_tokenizer` takes).

    Example:
        >>> policy = ReferenceFormatClient(OpenAICompatClient(url, "pat-jj/s3-8-3-3-20steps"),   # doctest: +SKIP
        ...                                "pat-jj/s3-8-3-3-20steps")
        >>> S3Searcher(policy, retriever, SearchConfig.from_name("8-3-4", prompt_format="reference"))  # doctest: +SKIP
    """

    def __init__(self, client: ChatClient, tokenizer: Any) -> None:
        self.client = client
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, str | Path) else tokenizer
        self.model = client.model

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The reference's token ids for an episode so far.

        The first message (the user prompt) goes through the chat template with the generation prompt; every
        later message, whatever its role (the searcher's outputs, the results, the feedback), is tokenized on
        its own without special tokens and appended.
        """
        if not messages or messages[0]["role"] != "user":
            raise ValueError("the reference format starts with the searcher's user prompt")
        ids = self.tokenizer.apply_chat_template([dict(messages[0])], add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        for message in messages[1:]:
            ids += self.tokenizer.encode(message["content"], add_special_tokens=False)
        return ids

    @staticmethod
    def _no_grammar(grammar: str | None) -> None:
        if grammar is not None:
            raise NotImplementedError("the reference format has no constrained decoding (the reference had none)")

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        self._no_grammar(grammar)
        return self.client.complete(self.prompt_ids(messages), max_tokens=max_tokens, temperature=temperature,
                                    stop=stop, seed=seed)

    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        self._no_grammar(grammar)
        return await self.client.acomplete(self.prompt_ids(messages), max_tokens=max_tokens,
                                           temperature=temperature, stop=stop, seed=seed)

    def complete(self, prompt: str | Sequence[int], **kwargs: Any) -> Completion:
        return self.client.complete(prompt, **kwargs)

    async def acomplete(self, prompt: str | Sequence[int], **kwargs: Any) -> Completion:
        return await self.client.acomplete(prompt, **kwargs)

    def close(self) -> None:
        self.client.close()
