"""HTTP client for an s3 / Search-R1 compatible retrieval server (``POST /retrieve``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from s3_agents.corpus import parse_passage
from s3_agents.errors import RetrieverError, RetrieverRefusedError, RetrieverUnavailableError
from s3_agents.retrievers.base import Retriever, check_queries
from s3_agents.types import Passage

__all__ = ["RemoteRetriever", "build_request", "parse_response", "public_url", "RETRIEVER_KEY_ENV"]

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}

RETRIEVER_KEY_ENV = "S3_RETRIEVER_KEY"
"""Environment variable holding the key of a keyed retrieval server (``s3 serve --api-key``)."""


def build_request(queries: Sequence[str], k: int, *, return_scores: bool = True) -> dict[str, Any]:
    """The JSON body of ``POST /retrieve``: ``{"queries", "topk", "return_scores"}``."""
    return {"queries": list(queries), "topk": int(k), "return_scores": bool(return_scores)}


def parse_response(payload: Any, n_queries: int) -> list[list[Passage]]:
    """Turn a ``/retrieve`` reply into passages.

    Accepts both reply shapes: with scores, ``{"result": [[{"document": doc, "score": s}, ...]]}``;
    without, ``{"result": [[doc, ...]]}``. ``doc`` is ``{"id", "contents"}`` (wiki-18) or
    ``{"id", "title", "text"}``.

    Raises:
        RetrieverError: If the reply has another shape or the wrong number of result lists.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), list):
        raise RetrieverError(f'expected {{"result": [...]}} from the retrieval server, got {str(payload)[:200]}')
    result = payload["result"]
    if len(result) != n_queries:
        raise RetrieverError(f"sent {n_queries} queries but the server returned {len(result)} result lists")
    out: list[list[Passage]] = []
    for hits in result:
        if not isinstance(hits, list):
            raise RetrieverError(f"a result list is {type(hits).__name__}, expected a list")
        passages = []
        for hit in hits:
            try:
                if isinstance(hit, dict) and "document" in hit:
                    passage = parse_passage(hit["document"])
                    if hit.get("score") is not None:
                        passage = passage.with_score(float(hit["score"]))
                else:
                    passage = parse_passage(hit)
            except (ValueError, TypeError) as err:
                raise RetrieverError(f"unreadable document in the server reply: {err}") from err
            passages.append(passage)
        out.append(passages)
    return out


def public_url(url: str, *, path: bool = True) -> str:
    """``url`` as it may be shown in a message, a log or ``/health``: without credentials (``user:pw@``), query
    string or fragment, which may hold a token; ``path=False`` keeps only scheme, host and port.

    Example:
        >>> public_url("http://user:pw@10.0.0.5:3000/retrieve?token=x")
        'http://10.0.0.5:3000/retrieve'
        >>> public_url("https://user@search.example/v1/retrieve", path=False)
        'https://search.example'
    """
    parts = httpx.URL(url)
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/') if path else ''}"


def _with_path(url: str, last: str) -> str:
    """``url`` with its path ending in ``last`` (``/retrieve`` or ``/health``); its query string kept."""
    parts = httpx.URL(url)
    path = parts.path.rstrip("/").removesuffix("/retrieve")
    return str(parts.copy_with(path=path + last))


class _Retry(Exception):
    """An attempt that failed in a way worth retrying (transport error, HTTP 408/429/5xx)."""


class RemoteRetriever(Retriever):
    """Retrieval through an s3 / Search-R1 retrieval server, such as ``s3 serve``.

    Transport failures (connection refused, timeouts, HTTP 408/429/5xx) are retried with
    exponential backoff (by ``tenacity``); after the last attempt a :class:`RetrieverUnavailableError` names the URL.
    Other HTTP errors (a wrong API key, a request over the server's limits) raise
    :class:`~s3_agents.errors.RetrieverRefusedError` at once, with the status and the server's
    explanation.

    Args:
        url: The server (``http://127.0.0.1:3000``) or its endpoint (``.../retrieve``).
        api_key: Sent as ``Authorization: Bearer <key>``; default: ``$S3_RETRIEVER_KEY`` when set.
        timeout: Seconds per attempt.
        retries: Attempts after the first one.
        backoff: First retry delay in seconds; doubles after each attempt.

    Example:
        >>> r = RemoteRetriever("http://127.0.0.1:3000/retrieve")   # doctest: +SKIP
        >>> r.search(["Who founded Gritia?"], k=3)                   # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if retries < 0 or timeout <= 0:
            raise ValueError("retries must be >= 0 and timeout > 0")
        self.url = _with_path(url, "/retrieve")
        self.shown_url = public_url(self.url)   # in messages: no credentials, no query string
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        api_key = api_key if api_key is not None else os.environ.get(RETRIEVER_KEY_ENV) or None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=self._headers)

    def _unavailable(self, err: str) -> RetrieverUnavailableError:
        return RetrieverUnavailableError(
            self.shown_url,
            f"retrieval server at {self.shown_url} did not answer after {self.retries + 1} attempt(s) "
            f"(timeout {self.timeout:g} s each): {err}. Is it running? Start one with `s3 serve`.",
        )

    def _retrying(self) -> dict[str, Any]:
        """The retry policy, for ``tenacity.Retrying`` and ``AsyncRetrying``."""
        return {"stop": stop_after_attempt(self.retries + 1), "wait": wait_exponential(multiplier=self.backoff),
                "retry": retry_if_exception_type(_Retry), "reraise": True,
                "before_sleep": before_sleep_log(logger, logging.INFO)}

    def _reply(self, outcome: httpx.Response | httpx.TransportError, n: int) -> list[list[Passage]]:
        """The passages of one attempt's reply; raises :class:`_Retry` when the attempt should be repeated."""
        if isinstance(outcome, httpx.TransportError):
            raise _Retry(str(outcome) or type(outcome).__name__)
        response = outcome
        if response.status_code in _RETRYABLE_STATUS:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            detail = payload.get("detail", response.text) if isinstance(payload, dict) else response.text[:500]
            raise RetrieverRefusedError(self.shown_url, response.status_code, str(detail))
        try:
            payload = response.json()
        except ValueError as err:
            raise RetrieverError(f"retrieval server at {self.shown_url} sent a reply that is not JSON") from err
        return parse_response(payload, n)

    def _attempt(self, body: dict[str, Any]) -> list[list[Passage]]:
        try:
            outcome: httpx.Response | httpx.TransportError = self._client.post(self.url, json=body)
        except httpx.TransportError as err:
            outcome = err
        return self._reply(outcome, len(body["queries"]))

    async def _aattempt(self, client: httpx.AsyncClient, body: dict[str, Any]) -> list[list[Passage]]:
        try:
            outcome: httpx.Response | httpx.TransportError = await client.post(self.url, json=body)
        except httpx.TransportError as err:
            outcome = err
        return self._reply(outcome, len(body["queries"]))

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        try:
            return Retrying(**self._retrying())(self._attempt, build_request(queries, k))
        except _Retry as err:
            raise self._unavailable(str(err)) from None

    async def asearch(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        queries = check_queries(queries, k)
        if not queries:
            return []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
            try:
                return await AsyncRetrying(**self._retrying())(self._aattempt, client, build_request(queries, k))
            except _Retry as err:
                raise self._unavailable(str(err)) from None

    def health(self) -> dict[str, Any]:
        """``GET /health`` of the server (one attempt)."""
        target = _with_path(self.url, "/health")
        url = public_url(target)
        try:
            response = self._client.get(target)
        except httpx.TransportError as err:
            raise RetrieverUnavailableError(url, f"retrieval server at {url} is not reachable: {err}") from err
        if response.status_code >= 500:
            raise RetrieverUnavailableError(url, f"retrieval server at {url} answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise RetrieverRefusedError(url, response.status_code, response.text[:500])
        try:
            return response.json()
        except ValueError as err:
            raise RetrieverError(f"retrieval server at {url} sent a /health reply that is not JSON") from err

    def close(self) -> None:
        self._client.close()
