"""The LLM client protocol: chat and raw completion, sync and async."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["AsyncChatClient", "ChatClient", "Completion", "Message", "truncate_at_stop", "ThreadedClient"]

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class Completion:
    """What a model wrote.

    Attributes:
        text: The generated text (a stop string that ended it is not included).
        finish_reason: ``"stop"`` (end of turn or stop string), ``"length"`` (token limit), or
            what the backend said.
        stop: The stop string that ended the text, when the backend tells (else ``None``).
        prompt_tokens: Prompt length in tokens, when known.
        completion_tokens: Generated tokens, when known.
    """

    text: str
    finish_reason: str | None = None
    stop: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class AsyncChatClient(Protocol):
    """What the search graph needs of its searcher in async runs (``asearch``, ``abatch``, ``astream``).

    Every :class:`ChatClient` is one; a rollout backend that only generates asynchronously (training's
    ``VerlPolicy``) is only this.
    """

    model: str

    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        """Continue a conversation with one assistant message.

        ``grammar`` (GBNF, see :func:`~s3_agents.protocol.grammar.action_grammar`) constrains the output; a client
        that cannot enforce it raises ``NotImplementedError`` rather than ignore it.
        """
        ...


@runtime_checkable
class ChatClient(AsyncChatClient, Protocol):
    """A language model behind chat and raw-completion calls, sync and async.

    Implementations: :class:`~s3_agents.llm.OpenAICompatClient` (vLLM, llama.cpp server, OpenAI),
    :class:`~s3_agents.llm.LlamaCppClient` (in-process GGUF), :class:`~s3_agents.llm.TransformersClient`
    and :class:`~s3_agents.testing.ScriptedClient`.
    """

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        """Blocking :meth:`achat`."""
        ...

    def complete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        """Continue raw text (no chat template), or a prompt given as token ids."""
        ...

    async def acomplete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                        stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        """Async :meth:`complete`."""
        ...

    def close(self) -> None:
        """Release the model or connection (idempotent)."""
        ...


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, str | None]:
    """Cut ``text`` at the earliest stop string; return the text and the stop string found."""
    best: tuple[int, str] | None = None
    for s in stop or ():
        at = text.find(s)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, s)
    return (text, None) if best is None else (text[:best[0]], best[1])


class ThreadedClient:
    """Mixin for in-process models: async calls run the sync ones in a worker thread, one at a time.

    The sync methods hold the client's thread lock (``self._guard``), which serialises calls from every
    thread and event loop; async callers first queue on an :class:`asyncio.Lock` of their own loop (one per
    loop, made on first use), so waiting coroutines hold no worker thread. One client therefore serves any
    number of ``asyncio.run`` calls, threads and loops, one after another or at once.
    """

    def _loop_lock(self) -> asyncio.Lock:
        locks = self.__dict__.setdefault("_loop_locks", weakref.WeakKeyDictionary())
        loop = asyncio.get_running_loop()
        lock = locks.get(loop)
        if lock is None:
            lock = locks[loop] = asyncio.Lock()
        return lock

    async def achat(self, messages: Sequence[Message], **kwargs: object) -> Completion:
        async with self._loop_lock():
            return await asyncio.to_thread(self.chat, messages, **kwargs)  # type: ignore[attr-defined]

    async def acomplete(self, prompt: str | Sequence[int], **kwargs: object) -> Completion:
        async with self._loop_lock():
            return await asyncio.to_thread(self.complete, prompt, **kwargs)  # type: ignore[attr-defined]
