"""Test doubles for users' tests and ours: a scripted LLM client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

from s3_agents.llm.base import Completion, Message, truncate_at_stop
from s3_agents.protocol import prompt_question

__all__ = ["ScriptedClient", "on_event_loop"]


class ScriptedClient:
    """An LLM that replies from a script and records every call.

    Args:
        replies: Texts returned in order, or a function from the messages to a text.
        model: Name reported as ``model``.

    Example:
        >>> client = ScriptedClient(["first", "second"])
        >>> client.chat([{"role": "user", "content": "hi"}]).text, len(client.calls)
        ('first', 1)
    """

    def __init__(self, replies: Sequence[str] | Callable[[Sequence[Message]], str], *, model: str = "scripted") -> None:
        self.model = model
        self._replies = replies if callable(replies) else list(replies)
        self._next = 0
        self.calls: list[list[Message]] = []
        self.grammars: list[str | None] = []
        """The ``grammar`` of each chat call (scripted replies are returned as written, not checked)."""
        self.prompts: list[str | list[int]] = []
        """The prompt of each completion call (text, or token ids)."""

    @classmethod
    def one_search(cls, query: str | Callable[[str], str], keep: Sequence[int] = (1,)) -> ScriptedClient:
        """A searcher policy that issues ``query`` once, keeps documents ``keep`` (numbered from 1) and stops.

        ``query`` may be a function of the episode's question (read from the prompt's ``<question>`` block), so
        that concurrent episodes each search for their own question.

        Example:
            >>> policy = ScriptedClient.one_search("Ketroul currency")
            >>> policy.chat([{"role": "user", "content": "question"}]).text
            '<query>{"query": "Ketroul currency"}</query>'
            >>> policy = ScriptedClient.one_search(lambda question: question.split()[-1].rstrip("?"))
            >>> policy.chat([{"role": "user", "content": "<question>\\nWhere is Gritia?\\n</question>"}]).text
            '<query>{"query": "Gritia"}</query>'
        """
        def query_turn(messages: Sequence[Message]) -> str:
            if callable(query):
                question = prompt_question(messages[0]["content"]) or ""
                return "<query>" + json.dumps({"query": query(question)}) + "</query>"
            return "<query>" + json.dumps({"query": query}) + "</query>"

        select_turn = (f"<important_info>{list(keep)}</important_info>"
                       "<search_complete>True</search_complete>")
        return cls(lambda messages: query_turn(messages) if len(messages) == 1 else select_turn)

    def _reply(self, messages: Sequence[Message], stop: Sequence[str] | None) -> Completion:
        self.calls.append(list(messages))
        if callable(self._replies):
            text = self._replies(messages)
        else:
            if self._next >= len(self._replies):
                raise IndexError(f"ScriptedClient ran out of replies after {len(self._replies)} call(s)")
            text = self._replies[self._next]
            self._next += 1
        text, found = truncate_at_stop(text, stop)
        return Completion(text=text, finish_reason="stop", stop=found)

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        self.grammars.append(grammar)
        return self._reply(messages, stop)

    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        return self.chat(messages, stop=stop, grammar=grammar)

    def complete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        self.prompts.append(prompt if isinstance(prompt, str) else list(prompt))
        return self._reply([{"role": "user", "content": prompt if isinstance(prompt, str) else ""}], stop)

    async def acomplete(self, prompt: str | Sequence[int], **kwargs: object) -> Completion:
        return self.complete(prompt, stop=kwargs.get("stop"))  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing to release."""


def on_event_loop() -> bool:
    """Whether the caller runs on a thread with a running event loop: a test's probe for blocking work (file
    syncs, database reads, model calls) that should run in a worker thread instead.

    Example:
        >>> async def probe():
        ...     return on_event_loop(), await asyncio.to_thread(on_event_loop)
        >>> asyncio.run(probe())
        (True, False)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
