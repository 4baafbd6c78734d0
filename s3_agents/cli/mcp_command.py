"""``s3 mcp``: the searcher as an MCP server (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated

import typer

from s3_agents.cli.options import (
    ConfigName,
    Constrained,
    EfSearchOpt,
    FillContext,
    FormatOpt,
    IndexOpt,
    LlmTimeout,
    MaxContextDocs,
    NprobeOpt,
    PolicyAdapter,
    PolicyEngine,
    PolicyGguf,
    PolicyHf,
    PolicyModel,
    PolicyTokenizer,
    PolicyUrl,
    RetrieverKey,
    Searcher,
    UrlOpt,
    check_server_options,
    fail,
    info,
    open_llm,
    open_retriever,
    open_trained,
    reference_policy,
    search_config,
    trained_name,
)

__all__ = ["mcp_command"]


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
    index: IndexOpt = None,
    nprobe: NprobeOpt = None,
    ef_search: EfSearchOpt = None,
    url: UrlOpt = None,
    retriever_key: RetrieverKey = None,
    policy_url: PolicyUrl = None,
    policy_model: PolicyModel = None,
    policy_gguf: PolicyGguf = None,
    policy_hf: PolicyHf = None,
    policy_adapter: PolicyAdapter = None,
    policy_engine: PolicyEngine = "llama.cpp",
    llm_key: Annotated[str | None, typer.Option(
        envvar="OPENAI_API_KEY", help="API key for the policy endpoint (--api-key is this server's own).")] = None,
    timeout: LlmTimeout = 300.0,
    config: ConfigName = "8-3-3",
    constrained: Constrained = False,
    max_context_docs: MaxContextDocs = None,
    fill_context: FillContext = False,
    prompt_format: FormatOpt = "chat",
    policy_tokenizer: PolicyTokenizer = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error (HTTP).")] = "info",
    trained: Annotated[bool, typer.Option(
        help="Serve a shipped trained searcher (SmolLM2 + LoRA, its own loop settings, on --policy-engine; "
             "--searcher picks which) over its shipped corpus unless --index / --url is given.")] = False,
    searcher_name: Searcher = None,
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

    name = trained_name(searcher_name)
    if trained or name:
        policy, cfg, retriever = open_trained(name, policy_engine, {
            "--policy-url": policy_url, "--policy-gguf": policy_gguf, "--policy-hf": policy_hf,
            "--policy-adapter": policy_adapter}, prompt_format, index, url, api_key=retriever_key, nprobe=nprobe,
            ef_search=ef_search)
    else:
        cfg = search_config(config, constrained=constrained, max_context_docs=max_context_docs,
                            fill_context=fill_context, prompt_format=prompt_format)
        retriever = open_retriever(index, url, api_key=retriever_key, nprobe=nprobe, ef_search=ef_search)
        policy = open_llm(policy_url, policy_model, policy_gguf, llm_key, "policy", policy_hf, policy_adapter,
                          timeout, policy_engine)
        policy = reference_policy(policy, prompt_format, policy_tokenizer, policy_model)
    server = create_mcp_server(S3Searcher(policy, retriever, cfg))
    if transport == "http":
        info(f"MCP server (streamable HTTP) on http://{host}:{port}/mcp")
    else:
        info("MCP server on stdio")
    run_mcp_server(server, "http" if transport == "http" else "stdio", host=host, port=port, api_key=api_key,
                   allowed_hosts=allowed_host or (), log_level=log_level)
