"""The frozen generator: answers a question from the searcher's context."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from s3_agents.llm.base import ChatClient
from s3_agents.llm.openai_compat import OpenAICompatClient
from s3_agents.prompts import generator_messages
from s3_agents.types import Passage

__all__ = ["Generator"]


class Generator:
    """A frozen answerer over retrieved passages (the s3 answer prompt), on any :class:`ChatClient`.

    Swap the model by swapping the client: ``Generator(OpenAICompatClient(url, model))`` for vLLM,
    the llama.cpp server or OpenAI; ``Generator(LlamaCppClient())`` offline.

    Args:
        client: The LLM.
        max_tokens: Answer length limit.

    Example:
        >>> from s3_agents.testing import ScriptedClient
        >>> Generator(ScriptedClient(["Paris"])).answer("Capital of France?", [])
        'Paris'
    """

    def __init__(self, client: ChatClient, *, max_tokens: int = 64) -> None:
        self.client = client
        self.max_tokens = max_tokens

    @classmethod
    def from_endpoint(cls, base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> Generator:
        """The generator at any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI): the one-setting swap."""
        return cls(OpenAICompatClient(base_url, model, api_key=api_key), **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Generator:
        """The generator named by ``S3_GENERATOR_URL``, ``S3_GENERATOR_MODEL`` (and ``S3_GENERATOR_API_KEY``)."""
        url, model = os.environ.get("S3_GENERATOR_URL"), os.environ.get("S3_GENERATOR_MODEL")
        if not url or not model:
            raise ValueError("set S3_GENERATOR_URL (e.g. http://127.0.0.1:8000/v1) and S3_GENERATOR_MODEL")
        return cls.from_endpoint(url, model, api_key=os.environ.get("S3_GENERATOR_API_KEY"), **kwargs)

    @property
    def name(self) -> str:
        """Identifies the generator in caches: the client's model name."""
        return self.client.model

    def answer(self, question: str, passages: Sequence[Passage]) -> str:
        """Answer ``question`` using ``passages`` (an empty list means closed-book)."""
        reply = self.client.chat(generator_messages(question, passages), max_tokens=self.max_tokens, temperature=0.0)
        return reply.text.strip()

    async def aanswer(self, question: str, passages: Sequence[Passage]) -> str:
        """Async :meth:`answer`."""
        reply = await self.client.achat(generator_messages(question, passages), max_tokens=self.max_tokens,
                                        temperature=0.0)
        return reply.text.strip()
