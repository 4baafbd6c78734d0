"""Client of any OpenAI-compatible endpoint (vLLM, the llama.cpp server, OpenAI), on the official ``openai`` package."""

from __future__ import annotations

import asyncio
import os
import re
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal

import httpx
import openai
from openai import Omit

from s3_agents.errors import ContextWindowError, LLMClientError, LLMUnavailableError
from s3_agents.llm.base import Completion, Message

__all__ = ["OpenAICompatClient", "CHECK_TIMEOUT"]


def _base(url: str) -> str:
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        url = url.removesuffix(suffix)
    return url if url.endswith("/v1") else url + "/v1"


# How servers say that a prompt outgrew the window: llama.cpp's llama-server ("exceeds the available context
# size"), llama-cpp-python's server, vLLM and OpenAI ("maximum context length is N tokens").
_CONTEXT_FULL = re.compile(r"context (length|window|size)", re.IGNORECASE)


def _retried(status: int) -> bool:
    """The statuses the ``openai`` client retries (408, 409, 429, 5xx): still failing after the last attempt."""
    return status in (408, 409, 429) or status >= 500


CHECK_TIMEOUT = 10.0
"""Seconds :meth:`OpenAICompatClient.check` (and ``GET /models``) waits for an endpoint in all."""


class OpenAICompatClient:
    """Chat and completion calls to an OpenAI-compatible server, through the official ``openai`` client.

    The ``openai`` client retries transport failures and HTTP 408/409/429/5xx with exponential backoff
    (honouring ``Retry-After``); then an :class:`~s3_agents.errors.LLMUnavailableError` names the URL and
    the model. A model the server does not serve gives an :class:`~s3_agents.errors.LLMClientError`
    listing the ones it does.

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
        extra_body: Extra JSON fields for every request (e.g. vLLM's ``top_k``).
        grammar_api: How a ``grammar`` travels: ``"llama.cpp"`` (the request's ``grammar`` field),
            ``"vllm"`` (``structured_outputs: {"grammar": ...}``), or ``"auto"``: ask ``GET /models`` once
            and use vLLM's form when the server says it is vLLM (``owned_by: "vllm"``), else llama.cpp's.
        http_client: The ``httpx.Client`` of sync calls (proxies, certificates, tests); the ``openai``
            client's own by default.
        async_transport: The ``httpx`` transport of async calls (a proxy's, ``httpx.MockTransport`` in tests);
            each event loop gets its own async client over it, closed when that loop shuts down
            (``asyncio.run`` ends) or by :meth:`aclose` / :meth:`close`.

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
        extra_body: dict[str, Any] | None = None,
        grammar_api: Literal["auto", "llama.cpp", "vllm"] = "auto",
        http_client: httpx.Client | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model (see GET /v1/models)")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got timeout={timeout}, connect_timeout={connect_timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if grammar_api not in ("auto", "llama.cpp", "vllm"):
            raise ValueError(f"grammar_api must be 'auto', 'llama.cpp' or 'vllm', got {grammar_api!r}")
        self.base_url = _base(base_url)
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.extra_body = dict(extra_body or {})
        self.grammar_api = grammar_api
        self._timeouts = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._quick = httpx.Timeout(min(CHECK_TIMEOUT, timeout))
        key = api_key or os.environ.get("OPENAI_API_KEY")
        # openai insists on a key; a local server needs none, so then the header is left out of every request.
        self._no_auth: dict[str, Omit] | None = None if key else {"Authorization": Omit()}
        self._options: dict[str, Any] = {"base_url": self.base_url, "api_key": key or "none",
                                         "timeout": self._timeouts, "max_retries": retries}
        self._sync = openai.OpenAI(**self._options, http_client=http_client)
        # httpx's async pool belongs to one event loop: each loop gets its own client (asyncio.run again: a new
        # one), with an async generator parked on it that the loop's shutdown_asyncgens() closes, closing it.
        self._async_transport = async_transport
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, AsyncGenerator[None, None]]] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"OpenAICompatClient({self.base_url!r}, model={self.model!r})"

    # -- requests, replies and errors ------------------------------------------------------------
    def _request(self, key: str, value: Any, max_tokens: int, temperature: float, stop: Sequence[str] | None,
                 seed: int | None, grammar: str | None = None) -> dict[str, Any]:
        extra = dict(self.extra_body)
        if grammar is not None:
            if self._grammar_api() == "vllm":
                extra["structured_outputs"] = {"grammar": grammar}
            else:
                extra["grammar"] = grammar
        request: dict[str, Any] = {"model": self.model, key: value, "max_tokens": max_tokens,
                                   "temperature": temperature, "extra_body": extra or None,
                                   "extra_headers": self._no_auth}
        if stop:
            request["stop"] = list(stop)
        if seed is not None:
            request["seed"] = seed
        return request

    def _grammar_api(self) -> str:
        """``"vllm"`` or ``"llama.cpp"``; ``"auto"`` is settled by one ``GET /models``."""
        if self.grammar_api == "auto":
            try:
                owners = {str(getattr(m, "owned_by", "")) for m in self._list_models()}
            except openai.OpenAIError:
                owners = set()
            self.grammar_api = "vllm" if "vllm" in owners else "llama.cpp"  # type: ignore[assignment]
        return self.grammar_api

    def _list_models(self) -> list[Any]:
        quick = self._sync.with_options(timeout=self._quick, max_retries=0)
        return list(quick.models.list(extra_headers=self._no_auth))

    def _parse(self, url: str, reply: Any, chat: bool) -> Completion:
        try:
            choice = reply.choices[0]
            text = choice.message.content if chat else choice.text
        except (AttributeError, IndexError, TypeError) as err:
            raise LLMClientError(f"{url} answered without a completion: {str(reply)[:200]}",
                                 url=url, model=self.model) from err
        usage = reply.usage
        stop = getattr(choice, "stop_reason", None)  # vLLM: the stop string that ended the text
        return Completion(text=text or "", finish_reason=choice.finish_reason,
                          stop=stop if isinstance(stop, str) else None,
                          prompt_tokens=getattr(usage, "prompt_tokens", None),
                          completion_tokens=getattr(usage, "completion_tokens", None))

    def _failure(self, url: str, response: httpx.Response) -> LLMClientError:
        try:
            detail = response.json()
            detail = detail.get("error", detail) if isinstance(detail, dict) else detail
            detail = detail.get("message", detail) if isinstance(detail, dict) else detail
        except ValueError:
            detail = response.text[:300]
        message = f"{url} answered HTTP {response.status_code} for model {self.model!r}: {detail}"
        if response.status_code == 400 and _CONTEXT_FULL.search(str(detail)):
            return ContextWindowError(message, url=url, model=self.model)
        if response.status_code == 404 or "model" in str(detail).lower() and response.status_code == 400:
            try:
                served = self.models()
                message += f" (the server serves: {', '.join(served) or 'nothing'})"
            except LLMClientError:
                pass
        return LLMClientError(message, url=url, model=self.model)

    def _error(self, url: str, err: openai.OpenAIError) -> LLMClientError:
        """This library's error for what the ``openai`` client raised once its retries were spent."""
        if isinstance(err, openai.APIConnectionError):  # refused, reset, timed out
            cause = err.__cause__
            last = (str(cause) or type(cause).__name__) if cause is not None else str(err)
        elif isinstance(err, openai.APIStatusError) and _retried(err.status_code):
            last = f"HTTP {err.status_code}"
        elif isinstance(err, openai.APIStatusError):
            return self._failure(url, err.response)
        else:
            return LLMClientError(f"{url} (model {self.model!r}): {err}", url=url, model=self.model)
        return LLMUnavailableError(
            f"LLM endpoint {url} (model {self.model!r}) did not answer after {self.retries + 1} "
            f"attempt(s) (timeout {self.timeout:g} s each): {last}. Is the server running?",
            url=url, model=self.model)

    # -- sync --------------------------------------------------------------------------------
    def _create(self, request: dict[str, Any], chat: bool) -> Completion:
        url = self.base_url + ("/chat/completions" if chat else "/completions")
        try:
            reply = (self._sync.chat.completions if chat else self._sync.completions).create(**request)
        except openai.OpenAIError as err:
            raise self._error(url, err) from err
        return self._parse(url, reply, chat)

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        request = self._request("messages", list(messages), max_tokens, temperature, stop, seed, grammar)
        return self._create(request, chat=True)

    def complete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        """``/completions`` for raw text, or for token ids (vLLM and llama.cpp take them as they are)."""
        prompt = prompt if isinstance(prompt, str) else [int(i) for i in prompt]
        return self._create(self._request("prompt", prompt, max_tokens, temperature, stop, seed), chat=False)

    def models(self) -> list[str]:
        """Model ids the server lists at ``GET /models``."""
        url = self.base_url + "/models"
        try:
            return [str(m.id) for m in self._list_models()]
        except (openai.OpenAIError, AttributeError) as err:
            raise LLMClientError(f"could not list models at {url}: {err}", url=url, model=self.model) from err

    def check(self) -> None:
        """Fail early and clearly: the endpoint answers and lists this client's model.

        Raises:
            LLMUnavailableError: The endpoint does not answer (the message names the URL and model).
            LLMClientError: The model is not among those the server lists.
        """
        url = self.base_url + "/models"
        try:
            served = [getattr(m, "id", None) for m in self._list_models()]
        except openai.APITimeoutError as err:
            raise LLMUnavailableError(
                f"LLM endpoint {url} (model {self.model!r}) did not answer within {self._quick.read:g} s: it is "
                "hung or overloaded (the connection opened, no reply came)", url=url, model=self.model) from err
        except openai.APIConnectionError as err:
            raise LLMUnavailableError(f"LLM endpoint {url} (model {self.model!r}) is not reachable: "
                                      f"{err.__cause__ or err}. Is the server running?",
                                      url=url, model=self.model) from err
        except openai.APIStatusError as err:
            raise self._failure(url, err.response) from err
        except openai.OpenAIError as err:
            raise LLMClientError(f"{url} sent an unreadable model list: {err}", url=url, model=self.model) from err
        if self.model not in served:
            raise LLMClientError(f"model {self.model!r} is not served at {self.base_url}; it serves: "
                                 f"{', '.join(map(str, served)) or 'nothing'}", url=url, model=self.model)

    # -- async -------------------------------------------------------------------------------
    async def _aclient(self) -> openai.AsyncOpenAI:
        """The async client of the running event loop, made on first use and closed when the loop shuts down."""
        loop = asyncio.get_running_loop()
        if loop not in self._async:
            # Our own httpx client: the SDK's default one, dropped after its loop closed, schedules its close on
            # the next loop, where it fails ("Event loop is closed", logged as a never-retrieved task).
            transport = {"transport": self._async_transport} if self._async_transport is not None else {}
            client = openai.AsyncOpenAI(**self._options, http_client=openai.DefaultAsyncHttpxClient(**transport))
            guard = _closed_with_the_loop(client)
            await anext(guard)          # parked at its yield: the loop's shutdown_asyncgens() will close it
            self._async[loop] = (client, guard)
        return self._async[loop][0]

    async def aclose(self) -> None:
        """Close the running event loop's async client (the next async call opens a new one)."""
        _, guard = self._async.pop(asyncio.get_running_loop(), (None, None))
        if guard is not None:
            await guard.aclose()

    async def _acreate(self, request: dict[str, Any], chat: bool) -> Completion:
        url, client = self.base_url + ("/chat/completions" if chat else "/completions"), await self._aclient()
        try:
            reply = await (client.chat.completions if chat else client.completions).create(**request)
        except openai.OpenAIError as err:
            raise await asyncio.to_thread(self._error, url, err) from err  # may list the served models
        return self._parse(url, reply, chat)

    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        if grammar is not None and self.grammar_api == "auto":
            await asyncio.to_thread(self._grammar_api)
        request = self._request("messages", list(messages), max_tokens, temperature, stop, seed, grammar)
        return await self._acreate(request, chat=True)

    async def acomplete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                        stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        prompt = prompt if isinstance(prompt, str) else [int(i) for i in prompt]
        return await self._acreate(self._request("prompt", prompt, max_tokens, temperature, stop, seed), chat=False)

    def close(self) -> None:
        """Close the HTTP connections: the sync client's, and each open event loop's async client (on the loop
        itself: now when it is idle, as a task when it is this thread's running loop, else through its thread)."""
        self._sync.close()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, (_, guard) in list(self._async.items()):
            closing = guard.aclose()
            if loop.is_closed():
                closing.close()         # its connections went with the loop
            elif loop is running:
                task = loop.create_task(closing)
                _CLOSING.add(task)
                task.add_done_callback(_CLOSING.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(closing, loop)
            else:
                loop.run_until_complete(closing)
        self._async.clear()


_CLOSING: set[asyncio.Task[None]] = set()
"""Closing tasks started by :meth:`OpenAICompatClient.close` on a running loop (a task needs a strong reference)."""


async def _closed_with_the_loop(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """Yield once, then close ``client`` when closed: by the loop's ``shutdown_asyncgens()`` (``asyncio.run``'s
    end), by :meth:`OpenAICompatClient.aclose` or :meth:`OpenAICompatClient.close`."""
    try:
        yield
    finally:
        await client.close()
