"""``s3 mcp``: the searcher as an MCP server (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated

import typer

from s3_agents.cli.options import (
    ConfigName,
    LlmTimeout,
    Searcher,
    check_server_options,
    fail,
    info,
)
from s3_agents.cli.searching import (
    PolicyOptions,
    RetrieverOptions,
    loop_options,
    open_search,
    policy_options,
    retriever_options,
)
from s3_agents.cli.settings import settings_options
from s3_agents.config import McpLimits, SearchConfig

__all__ = ["mcp_command"]


@settings_options(McpLimits, "limits", hint="the server's limits")
@retriever_options()
@policy_options
@loop_options()
def mcp_command(
    transport: Annotated[str, typer.Option(help="stdio (the client starts this command) or http (streamable "
                                                "HTTP at http://HOST:PORT/mcp).")] = "stdio",
    host: Annotated[str, typer.Option(help="Address to bind with --transport http (127.0.0.1 keeps it "
                                           "local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port with --transport http.")] = 8765,
    api_key: Annotated[str | None, typer.Option(
        envvar="S3_API_KEY", help="Require this key on every HTTP request, as `s3 serve --api-key`.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Host name to answer besides the loopback names (repeatable; '*' for any), as `s3 serve`.")] = None,
    llm_key: Annotated[str | None, typer.Option(
        envvar="OPENAI_API_KEY", help="API key for the policy endpoint (--api-key is this server's own).")] = None,
    timeout: LlmTimeout = 300.0,
    config: ConfigName = "8-3-3",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error (HTTP).")] = "info",
    trained: Annotated[bool, typer.Option(
        help="Serve a shipped trained searcher (SmolLM2 + LoRA, its own loop settings, on --policy-engine; "
             "--searcher picks which) over its shipped corpus unless --index / --url is given.")] = False,
    searcher_name: Searcher = None,
    *,
    where: RetrieverOptions,
    policy: PolicyOptions,
    loop: SearchConfig,
    limits: McpLimits,
) -> None:
    """Serve the searcher to MCP clients: tools `search` (an s3 episode) and `retrieve` (top-k), and the
    passages they return as passage://{id} resources."""
    if transport not in ("stdio", "http"):
        raise typer.BadParameter("--transport must be stdio or http")
    check_server_options(host if transport == "http" else "127.0.0.1", api_key, log_level, "the searcher")
    try:
        from s3_agents.server.mcp_server import create_mcp_server, run_mcp_server
    except ImportError as err:
        fail(f'`s3 mcp` needs the MCP SDK ({err.name} is missing): pip install "s3-agents[mcp]"')
    from s3_agents.searcher import S3Searcher

    pieces = open_search(where, policy, loop, config, api_key=llm_key, timeout=timeout, trained=trained,
                         searcher=searcher_name)
    server = create_mcp_server(S3Searcher(pieces.policy, pieces.retriever, pieces.config), limits=limits)
    if transport == "http":
        info(f"MCP server (streamable HTTP) on http://{host}:{port}/mcp")
    else:
        info("MCP server on stdio")
    run_mcp_server(server, "http" if transport == "http" else "stdio", host=host, port=port, api_key=api_key,
                   allowed_hosts=allowed_host or (), log_level=log_level, limits=limits)
