"""The frozen generator: answers a question from the searcher's context."""

from __future__ import annotations

from collections.abc import Sequence

from s3_agents.llm.base import ChatClient
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
