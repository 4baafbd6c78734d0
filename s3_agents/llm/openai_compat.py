"""Client of any OpenAI-compatible endpoint: vLLM, the llama.cpp server, OpenAI."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from s3_agents.errors import LLMClientError, LLMUnavailableError
from s3_agents.llm.base import Completion, Message

__all__ = ["OpenAICompatClient", "CHECK_TIMEOUT"]

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _base(url: str) -> str:
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        url = url.removesuffix(suffix)
    return url if url.endswith("/v1") else url + "/v1"


CHECK_TIMEOUT = 10.0
"""Seconds :meth:`OpenAICompatClient.check` (and ``GET /models``) waits for an endpoint in all."""


class OpenAICompatClient:
    """Chat and completion calls to an OpenAI-compatible server.

    Transport failures and HTTP 408/409/429/5xx are retried with exponential backoff; then an
    :class:`~s3_agents.errors.LLMUnavailableError` names the URL and the model. A model the
    server does not serve gives an :class:`~s3_agents.errors.LLMClientError` listing the ones it does.

    Args:
        base_url: Server URL, with or without the ``/v1`` suffix (``http://127.0.0.1:8000/v1``).
        model: Model name sent with each request.
        api_key: Bearer token; defaults to ``OPENAI_API_KEY``, and none is sent when neither is set.
        timeout: Seconds to wait for a reply, per attempt; generous by default, since a CPU server can take
            minutes for a 500-token turn (and a timed-out request keeps the server busy).
        connect_timeout: Seconds to open a connection (a down host fails fast, whatever ``timeout`` is).
            :meth:`check` and ``GET /models`` wait at most :data:`CHECK_TIMEOUT` seconds in all, so an
            endpoint that accepts connections and never answers is reported in seconds, not minutes.
        retries: Attempts after the first.
        backoff: First retry delay in seconds, doubled each time.
        extra_body: Extra JSON fields for every request (e.g. vLLM's ``top_k``).
        grammar_api: How a ``grammar`` travels: ``"llama.cpp"`` (the request's ``grammar`` field),
            ``"vllm"`` (``structured_outputs: {"grammar": ...}``), or ``"auto"``: ask ``GET /models`` once
            and use vLLM's form when the server says it is vLLM (``owned_by: "vllm"``), else llama.cpp's.

    Example:
        >>> client = OpenAICompatClient("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
        >>> client.chat([{"role": "user", "content": "2 + 3?"}], max_tokens=8).text  # doctest: +SKIP
        '5'
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        extra_body: dict[str, Any] | None = None,
        grammar_api: Literal["auto", "llama.cpp", "vllm"] = "auto",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model (see GET /v1/models)")
        self.base_url = _base(base_url)
        self.model = model
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got timeout={timeout}, connect_timeout={connect_timeout}")
        self.timeout = timeout
        self._timeouts = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._quick = httpx.Timeout(min(CHECK_TIMEOUT, timeout))
        self.retries = retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        if grammar_api not in ("auto", "llama.cpp", "vllm"):
            raise ValueError(f"grammar_api must be 'auto', 'llama.cpp' or 'vllm', got {grammar_api!r}")
        self.grammar_api = grammar_api
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=self._timeouts, headers=self._headers)
        # One async client per event loop; a new loop (asyncio.run again) replaces the old client.
        self._aclients: dict[int, httpx.AsyncClient] = {}

    def __repr__(self) -> str:
        return f"OpenAICompatClient({self.base_url!r}, model={self.model!r})"

    # -- request building and reply parsing (pure) -------------------------------------------
    def _body(self, key: str, value: Any, max_tokens: int, temperature: float,
              stop: Sequence[str] | None, seed: int | None, grammar: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, key: value, "max_tokens": max_tokens,
                                "temperature": temperature, **self.extra_body}
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        if grammar is not None:
            if self._grammar_api() == "vllm":
                body["structured_outputs"] = {"grammar": grammar}
            else:
                body["grammar"] = grammar
        return body

    def _grammar_api(self) -> str:
        """``"vllm"`` or ``"llama.cpp"``; ``"auto"`` is settled by one ``GET /models``."""
        if self.grammar_api == "auto":
            try:
                response = self._client.get(self.base_url + "/models", timeout=self._quick)
                owners = {str(m.get("owned_by", "")) for m in response.json().get("data", [])}
            except (httpx.HTTPError, ValueError, AttributeError, TypeError):
                owners = set()
            self.grammar_api = "vllm" if "vllm" in owners else "llama.cpp"  # type: ignore[assignment]
        return self.grammar_api

    def _parse(self, url: str, payload: Any, chat: bool) -> Completion:
        try:
            choice = payload["choices"][0]
            text = choice["message"]["content"] if chat else choice["text"]
        except (KeyError, IndexError, TypeError) as err:
            raise LLMClientError(f"{url} answered without a completion: {str(payload)[:200]}",
                                 url=url, model=self.model) from err
        usage = payload.get("usage") or {}
        stop = choice.get("stop_reason")
        return Completion(text=text or "", finish_reason=choice.get("finish_reason"),
                          stop=stop if isinstance(stop, str) else None,
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))

    def _failure(self, url: str, response: httpx.Response) -> LLMClientError:
        try:
            detail = response.json()
            detail = detail.get("error", detail) if isinstance(detail, dict) else detail
            detail = detail.get("message", detail) if isinstance(detail, dict) else detail
        except ValueError:
            detail = response.text[:300]
        message = f"{url} answered HTTP {response.status_code} for model {self.model!r}: {detail}"
        if response.status_code == 404 or "model" in str(detail).lower() and response.status_code == 400:
            try:
                served = self.models()
                message += f" (the server serves: {', '.join(served) or 'nothing'})"
            except LLMClientError:
                pass
        return LLMClientError(message, url=url, model=self.model)

    def _unavailable(self, url: str, last: str) -> LLMUnavailableError:
        return LLMUnavailableError(
            f"LLM endpoint {url} (model {self.model!r}) did not answer after {self.retries + 1} "
            f"attempt(s) (timeout {self.timeout:g} s each): {last}. Is the server running?",
            url=url, model=self.model)

    def _delay(self, attempt: int) -> float:
        return 0.0 if attempt == 0 else self.backoff * 2 ** (attempt - 1)

    # -- sync --------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any], chat: bool) -> Completion:
        url, last = self.base_url + path, "no attempt made"
        for attempt in range(self.retries + 1):
            time.sleep(self._delay(attempt))
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as err:
                last = str(err) or type(err).__name__
                logger.info("LLM endpoint %s: attempt %d failed: %s", url, attempt + 1, last)
                continue
            if response.status_code in _RETRYABLE_STATUS:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise self._failure(url, response)
            return self._parse(url, response.json(), chat)
        raise self._unavailable(url, last)

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        body = self._body("messages", list(messages), max_tokens, temperature, stop, seed, grammar)
        return self._post("/chat/completions", body, chat=True)

    def complete(self, prompt: str, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        body = self._body("prompt", prompt, max_tokens, temperature, stop, seed)
        return self._post("/completions", body, chat=False)

    def models(self) -> list[str]:
        """Model ids the server lists at ``GET /models``."""
        url = self.base_url + "/models"
        try:
            response = self._client.get(url, timeout=self._quick)
            response.raise_for_status()
            return [m["id"] for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            raise LLMClientError(f"could not list models at {url}: {err}", url=url, model=self.model) from err

    def check(self) -> None:
        """Fail early and clearly: the endpoint answers and lists this client's model.

        Raises:
            LLMUnavailableError: The endpoint does not answer (the message names the URL and model).
            LLMClientError: The model is not among those the server lists.
        """
        url = self.base_url + "/models"
        try:
            response = self._client.get(url, timeout=self._quick)
        except httpx.TimeoutException as err:
            raise LLMUnavailableError(
                f"LLM endpoint {url} (model {self.model!r}) did not answer within {self._quick.read:g} s: it is "
                "hung or overloaded (the connection opened, no reply came)", url=url, model=self.model) from err
        except httpx.TransportError as err:
            raise LLMUnavailableError(f"LLM endpoint {url} (model {self.model!r}) is not reachable: {err}. "
                                      "Is the server running?", url=url, model=self.model) from err
        if response.status_code >= 400:
            raise self._failure(url, response)
        served = [m.get("id") for m in response.json().get("data", [])]
        if self.model not in served:
            raise LLMClientError(f"model {self.model!r} is not served at {self.base_url}; it serves: "
                                 f"{', '.join(map(str, served)) or 'nothing'}", url=url, model=self.model)

    # -- async -------------------------------------------------------------------------------
    def _aclient(self) -> httpx.AsyncClient:
        loop_id = id(asyncio.get_running_loop())
        client = self._aclients.get(loop_id)
        if client is None:
            self._aclients.clear()
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            client = self._aclients[loop_id] = httpx.AsyncClient(timeout=self._timeouts, headers=self._headers,
                                                                 limits=limits)
        return client

    async def _apost(self, path: str, body: dict[str, Any], chat: bool) -> Completion:
        url, last = self.base_url + path, "no attempt made"
        client = self._aclient()
        for attempt in range(self.retries + 1):
            await asyncio.sleep(self._delay(attempt))
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as err:
                last = str(err) or type(err).__name__
                continue
            if response.status_code in _RETRYABLE_STATUS:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise await asyncio.to_thread(self._failure, url, response)
            return self._parse(url, response.json(), chat)
        raise self._unavailable(url, last)

    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        if grammar is not None and self.grammar_api == "auto":
            await asyncio.to_thread(self._grammar_api)
        body = self._body("messages", list(messages), max_tokens, temperature, stop, seed, grammar)
        return await self._apost("/chat/completions", body, chat=True)

    async def acomplete(self, prompt: str, *, max_tokens: int = 256, temperature: float = 0.0,
                        stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        body = self._body("prompt", prompt, max_tokens, temperature, stop, seed)
        return await self._apost("/completions", body, chat=False)

    def close(self) -> None:
        """Close the HTTP connections (async clients are dropped with their event loops)."""
        self._client.close()
        self._aclients.clear()
