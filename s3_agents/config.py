"""Run-time settings of the search loop, and where derived files are cached."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

__all__ = ["SearchConfig", "ConnectionLimits", "ServerLimits", "McpLimits", "PromptFormat", "cache_root"]


def cache_root() -> Path:
    """Where files derived once and reused live (the world's index, GGUF LoRAs): ``$S3_AGENTS_CACHE`` or
    ``~/.cache/s3-agents``."""
    return Path(os.environ.get("S3_AGENTS_CACHE") or Path.home() / ".cache" / "s3-agents")

PromptFormat = Literal["chat", "reference"]


@dataclass(frozen=True)
class SearchConfig:
    """How the searcher's episode runs. Defaults are the paper's 8-3-3.

    Attributes:
        search_k: Documents per search (the first "8" of 8-3-3).
        max_select: Documents the searcher may mark important per search (the "3").
        max_turns: Searches (retrieval calls) allowed (the last "3"). Exactly this many: the
            searcher gets one more generation after the last results to select from them and stop,
            and a query written then is not run. The s3 reference code allowed ``max_turns + 1``
            searches; see docs/searcher.md.
        initial_k: Naive-RAG documents for the raw question in the first prompt (s3 uses 3).
        keep_initial: Keep the initial documents in the final context when the searcher did not
            select from them (the reference always did).
        keep_unselected: A search block the searcher never selected from contributes all its
            documents (the reference's behaviour); ``False`` drops such blocks.
        max_context_docs: Cap on documents in the final context (``None``: no cap).
        fill_context: Fill what the searcher leaves of ``max_context_docs`` with the initial naive-RAG
            documents, in rank order (without a cap: add every initial document not already in).
        new_results: Each search shows only documents the episode has not shown yet (the next ``search_k``
            in rank order), so a query that finds the same passages again still brings new ones. Not in s3,
            whose searches may return the initial documents again.
        max_new_tokens: Token budget of one searcher generation (s3: 500).
        temperature: Sampling temperature of the searcher (0 = greedy, as s3 evaluation).
        bm25_hint: Tell the searcher the engine is BM25 (Boolean operators help).
        constrained: Decode every searcher turn under :func:`~s3_agents.protocol.grammar.action_grammar`, so each
            turn is a valid action (the policy client must support grammars: llama.cpp, vLLM, transformers).
        query_spans: With ``constrained``, a query must be one of the capitalised spans of the documents shown so
            far that the question does not contain (:func:`~s3_agents.protocol.spans.candidate_spans`): the
            searcher chooses among names it has read instead of writing free text. Not in s3.
        prompt_format: ``"chat"``: observations and feedback arrive as user messages. ``"reference"``: the s3
            reference code's format, for checkpoints trained with it (``pat-jj/s3-8-3-3-20steps``): one
            growing assistant turn (the policy must be a :class:`~s3_agents.llm.ReferenceFormatClient`),
            results as ``<information>Doc i(Title: t) text ...</information>`` between blank lines, the feedback
            ending in an open ``<query>``, no stop strings (the output is cut after its first ``</query>``).

    Example:
        >>> SearchConfig.from_name("5-3-4")
        SearchConfig(search_k=5, max_select=3, max_turns=4, initial_k=3, keep_initial=True, \
keep_unselected=True, max_context_docs=None, fill_context=False, new_results=False, max_new_tokens=500, \
temperature=0.0, bm25_hint=False, constrained=False, query_spans=False, prompt_format='chat')
    """

    search_k: int = 8
    max_select: int = 3
    max_turns: int = 3
    initial_k: int = 3
    keep_initial: bool = True
    keep_unselected: bool = True
    max_context_docs: int | None = None
    fill_context: bool = False
    new_results: bool = False
    max_new_tokens: int = 500
    temperature: float = 0.0
    bm25_hint: bool = False
    constrained: bool = False
    query_spans: bool = False
    prompt_format: PromptFormat = "chat"

    def __post_init__(self) -> None:
        for name in ("search_k", "max_select", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_turns < 0 or self.initial_k < 0:
            raise ValueError("max_turns and initial_k must be >= 0")
        if self.max_select > self.search_k:
            raise ValueError(f"max_select ({self.max_select}) cannot exceed search_k ({self.search_k})")
        if self.max_context_docs is not None and self.max_context_docs < 1:
            raise ValueError("max_context_docs must be >= 1 or None")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.prompt_format not in ("chat", "reference"):
            raise ValueError(f"prompt_format must be 'chat' or 'reference', got {self.prompt_format!r}")
        if self.query_spans and not self.constrained:
            raise ValueError("query_spans restricts queries through the action grammar: it needs constrained=True")
        if self.prompt_format == "reference" and self.constrained:
            raise ValueError("the reference format has no constrained decoding (the reference code had none)")

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> SearchConfig:
        """Parse a paper-style name ``"<retrieved>-<selected>-<turns>"`` such as ``"8-3-3"``."""
        match = re.fullmatch(r"\s*(\d+)-(\d+)-(\d+)\s*", name)
        if not match:
            raise ValueError(f"expected a name like '8-3-3' (retrieved-selected-turns), got {name!r}")
        k, select, turns = (int(x) for x in match.groups())
        return replace(cls(), search_k=k, max_select=select, max_turns=turns, **overrides)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """The paper-style name, e.g. ``"8-3-3"``."""
        return f"{self.search_k}-{self.max_select}-{self.max_turns}"


@dataclass(frozen=True)
class ConnectionLimits:
    """How a server (``s3 serve``, ``s3 mcp``) holds its connections and bounds each request in size and time.

    Attributes:
        max_body_bytes: Largest request body.
        body_timeout: Seconds a client has to send its whole body (then 408).
        request_timeout: Seconds a request may take to be served once its body is in; then the client is told
            the server was busy.
        max_connections: Open connections; one past it is closed as soon as it is accepted (lowered to fit
            the process's open-file limit).
        header_timeout: Seconds a connection has to send a request's head, from when it opened or from its last
            response; then it is closed.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open.
    """

    max_body_bytes: int = 1_000_000
    body_timeout: float = 30.0
    request_timeout: float = 60.0
    max_connections: int = 1_000
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0

    def __post_init__(self) -> None:
        for limit in fields(self):  # every limit is a positive number
            if getattr(self, limit.name) <= 0:
                raise ValueError(f"{limit.name} must be positive, got {getattr(self, limit.name)}")


@dataclass(frozen=True)
class ServerLimits(ConnectionLimits):
    """What one retrieval request may ask for, and how ``s3 serve`` shares its index between requests (and,
    from :class:`ConnectionLimits`, its connections). Past ``request_timeout``, a request gets 503 if none of
    its queries got a turn, 504 if it was too large to finish.

    Attributes:
        max_queries: Queries per request.
        max_topk: Largest ``topk``.
        max_query_chars: Longest single query.
        max_request_chars: Query characters per request, all queries together.
        default_topk: ``topk`` used when the request sends null or omits it.
        max_batch: Queries per index call (across concurrent requests).
        max_batch_chars: Query characters per index call: the slice of a large request that runs before
            smaller requests get their turn.
        max_batch_passages: Passages per index call, queries times ``topk``: bounds the slice of a request of
            many short queries with a large ``topk``.
        min_query_cost: Characters a query counts at least against ``max_batch_chars``: embedding even an
            empty query has a cost.
    """

    max_queries: int = 512
    max_topk: int = 100
    max_query_chars: int = 4_000
    max_request_chars: int = 100_000
    default_topk: int = 3
    max_batch: int = 256
    max_batch_chars: int = 2_000
    max_batch_passages: int = 250
    min_query_cost: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default_topk > self.max_topk:
            raise ValueError("default_topk must not exceed max_topk")


@dataclass(frozen=True)
class McpLimits(ConnectionLimits):
    """How ``s3 mcp`` shares its searcher between tool calls (and, from :class:`ConnectionLimits`, its HTTP
    connections). A ``search`` call that has not finished within ``request_timeout`` (its turn waited for
    included) ends with an error saying the server was busy.

    Attributes:
        max_searches: Search episodes run at once; further calls wait for a turn.
    """

    max_searches: int = 4
