"""A LangChain chat model for any OpenAI-compatible endpoint: the agent's (or generator's) LLM swap."""

from __future__ import annotations

from typing import Any

__all__ = ["openai_compatible_chat_model"]


def openai_compatible_chat_model(base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> Any:
    """A ``ChatOpenAI`` for any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI), temperature 0, answers
    of at most 512 tokens (``max_tokens=None`` leaves the length to the endpoint; any ``ChatOpenAI`` field may be
    passed).

    Example:
        >>> llm = openai_compatible_chat_model("http://127.0.0.1:8000/v1", "smollm2")   # doctest: +SKIP
    """
    from langchain_openai import ChatOpenAI  # imported on use: it pulls in the openai client

    kwargs.setdefault("temperature", 0.0)
    kwargs.setdefault("max_tokens", 512)
    return ChatOpenAI(model=model, base_url=base_url, api_key=api_key or "none", **kwargs)
