"""The s3 searcher as an MCP server (``s3 mcp``; ``pip install "s3-agents[mcp]"``), on the official ``mcp`` SDK.

Tools:

* ``search``: one s3 episode; returns the selected passages (id, title, text, score, resource URI) and the
  queries the searcher issued;
* ``retrieve``: plain top-k retrieval for one query.

Resources: every passage a tool call has returned is readable as ``passage://{id}`` (the most recent
``remember`` passages are kept), so a client can cite or re-read it without another search.

Transports: stdio (a client starts ``s3 mcp`` itself) and streamable HTTP (``/mcp``; bound to loopback by
default, answering only loopback ``Host`` names, and with ``api_key`` every request but ``GET /health`` needs
the key, as with ``s3 serve``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import BaseModel, Field

from s3_agents.config import ConnectionLimits, McpLimits
from s3_agents.graph import SearchState
from s3_agents.retrievers.base import Retriever
from s3_agents.searcher import S3Searcher
from s3_agents.server.guards import BodyGuard, HostGuard, KeyGuard, served_hosts
from s3_agents.types import Passage

__all__ = ["FoundPassage", "SearchResult", "RetrieveResult", "PassageStore", "create_mcp_server", "run_mcp_server"]

T = TypeVar("T")
MAX_QUESTION_CHARS = 4_000
MAX_TOPK = 50


class FoundPassage(BaseModel):
    """A passage as a tool returns it."""

    id: str
    title: str
    text: str
    score: float | None = None
    uri: str = Field(description="passage://{id}: read it again as an MCP resource")


class SearchResult(BaseModel):
    """What the ``search`` tool returns: the searcher's selection and how it got there."""

    question: str
    passages: list[FoundPassage] = Field(description="The passages the searcher selected, in context order.")
    queries: list[str] = Field(description="The search queries the searcher issued, in order.")
    stop_reason: str = Field(description="Why the episode ended (e.g. search_complete, max_turns).")


class RetrieveResult(BaseModel):
    """What the ``retrieve`` tool returns."""

    query: str
    passages: list[FoundPassage]


def passage_uri(passage_id: str) -> str:
    """The resource URI of a passage.

    Example:
        >>> passage_uri("doc 7/a")
        'passage://doc%207%2Fa'
    """
    return "passage://" + quote(passage_id, safe="")


class PassageStore:
    """The passages tool calls returned, by id: the most recent ``capacity`` of them.

    Example:
        >>> store = PassageStore(capacity=1)
        >>> _ = store.add([Passage(id="a", title="A", text="x"), Passage(id="b", title="B", text="y")])
        >>> store.get("b").title, store.get("a")
        ('B', None)
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._by_id: OrderedDict[str, Passage] = OrderedDict()

    def add(self, passages: Sequence[Passage]) -> list[FoundPassage]:
        """Keep ``passages`` and return them as tool output."""
        for passage in passages:
            self._by_id[passage.id] = passage
            self._by_id.move_to_end(passage.id)
        while len(self._by_id) > self.capacity:
            self._by_id.popitem(last=False)
        return [FoundPassage(id=p.id, title=p.title, text=p.text, score=p.score, uri=passage_uri(p.id))
                for p in passages]

    def get(self, passage_id: str) -> Passage | None:
        return self._by_id.get(passage_id)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s3-agents")
    except PackageNotFoundError:  # run from a source tree
        return ""


def create_mcp_server(searcher: S3Searcher, retriever: Retriever | None = None, *, remember: int = 10_000,
                      name: str = "s3-agents", limits: McpLimits | None = None) -> MCPServer:
    """An MCP server with the ``search`` and ``retrieve`` tools and ``passage://{id}`` resources.

    Args:
        searcher: The s3 searcher behind ``search``.
        retriever: The retriever behind ``retrieve`` (default: the searcher's).
        remember: How many returned passages stay readable as resources.
        name: The server name clients see.
        limits: How many searches run at once and each tool call's deadline (defaults: :class:`McpLimits`);
            a call past its deadline ends with a tool error saying the server was busy.

    Example:
        >>> server = create_mcp_server(S3Searcher(policy, retriever))        # doctest: +SKIP
        >>> server.run("stdio")                                             # doctest: +SKIP
    """
    retriever = retriever or searcher.context.retriever
    store = PassageStore(remember)
    limits = limits or McpLimits()
    turns = asyncio.Semaphore(limits.max_searches)

    async def in_time(work: Awaitable[T], what: str) -> T:
        try:
            async with asyncio.timeout(limits.request_timeout):
                return await work
        except TimeoutError:
            raise ToolError(f"server busy: the {what} did not finish within {limits.request_timeout:g} s "
                            "(its wait for a turn included); try again later") from None

    async def one_search(question: str) -> SearchState:
        async with turns:
            return await searcher.asearch(question)
    server = MCPServer(name, version=_version(), instructions=(
        "Knowledge-base search. `search` runs a search agent that issues several queries and keeps the useful "
        "passages: give it the full question. `retrieve` is one plain top-k lookup. Passages stay readable as "
        "passage://{id} resources."))

    @server.tool(title="Search with the s3 agent")
    async def search(question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS,
                                                    description="The full question.")]) -> SearchResult:
        """Answer-oriented search: the s3 searcher issues queries, reads the results and keeps the passages
        that help answer the question. Returns them with the queries it issued."""
        state = await in_time(one_search(question), "search")
        return SearchResult(question=question, passages=store.add(state["context"]), queries=list(state["queries"]),
                            stop_reason=str(state["stop_reason"]))

    @server.tool(title="Top-k retrieval")
    async def retrieve(query: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)],
                       k: Annotated[int, Field(ge=1, le=MAX_TOPK, description="Passages to return.")] = 3,
                       ) -> RetrieveResult:
        """Plain top-k retrieval for one query (no agent): the k passages nearest to it."""
        (hits,) = await in_time(retriever.asearch([query], k), "retrieval")
        return RetrieveResult(query=query, passages=store.add(hits))

    @server.resource("passage://{passage_id}", name="passage", mime_type="text/plain",
                     description="A passage a search or retrieve call returned, by id.")
    def passage(passage_id: str) -> str:
        found = store.get(passage_id)
        if found is None:
            raise ResourceNotFoundError(f"passage {passage_id!r} has not been returned by search or retrieve on "
                                        f"this server (the last {store.capacity} are kept)")
        return f"{found.title}\n{found.text}"

    @server.custom_route("/health", methods=["GET"])
    async def health(request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "ok", "tools": ["search", "retrieve"]})

    return server


def _browser_guard(hosts: Sequence[str]) -> Any:
    """The SDK's request checks for the ``Host`` names served: the same names for ``Origin`` (a web page of
    another origin gets 403), off when any name is served."""
    from mcp.server.transport_security import TransportSecuritySettings

    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [f"[{h}]" if ":" in h else h for h in hosts]
    return TransportSecuritySettings(allowed_hosts=[*names, *(f"{n}:*" for n in names)],
                                     allowed_origins=[f"{scheme}://{n}{port}" for n in names
                                                      for scheme in ("http", "https") for port in ("", ":*")])


def run_mcp_server(server: MCPServer, transport: Literal["stdio", "http"] = "stdio", *, host: str = "127.0.0.1",
                   port: int = 8765, api_key: str | None = None, allowed_hosts: Sequence[str] = (),
                   log_level: str = "info", limits: ConnectionLimits | None = None) -> None:
    """Serve ``server`` until interrupted: over stdio, or streamable HTTP at ``http://host:port/mcp``.

    Over HTTP, the ``Host`` names answered follow ``s3 serve`` (loopback-bound: the loopback names plus
    ``allowed_hosts``; bound elsewhere: ``allowed_hosts`` when given, else any), with ``api_key`` every
    request needs ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, and bodies and connections are
    bounded by ``limits`` as in ``s3 serve``.
    """
    if transport == "stdio":
        server.run("stdio")
        return
    from s3_agents.server.connections import run_uvicorn

    limits = limits or ConnectionLimits()
    hosts = served_hosts(host, allowed_hosts)
    app: Any = server.streamable_http_app(host=host, transport_security=_browser_guard(hosts))
    app = BodyGuard(app, limits.max_body_bytes, limits.body_timeout)
    if api_key is not None:
        app = KeyGuard(app, api_key, open_paths=("/health",))
    app = HostGuard(app, hosts)
    run_uvicorn(app, host=host, port=port, limits=limits, log_level=log_level)
