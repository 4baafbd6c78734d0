"""``s3 mcp``: the searcher as an MCP server, driven by the official SDK's own client.

In process (scripted searcher) for the tools, schemas, resources and errors; then ``s3 mcp --transport http`` as
typed, in this process, with a real llama.cpp server as the searcher's policy and with the shipped searcher
(``--trained``). ``s3 mcp`` over stdio, as an MCP client starts it, runs as a subprocess in the documented example
(tests/integrations/test_doc_examples.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from s3_agents import FaissRetriever, S3Searcher, load_demo_corpus
from s3_agents.server.mcp_server import create_mcp_server
from s3_agents.testing import ScriptedClient
from tests.conftest import ThreadedServer, run_main

QUESTION = "What is the currency of Ketroul?"


@pytest.fixture(scope="module")
def demo_ids() -> dict[str, str]:
    return {p.id: p.title for p in load_demo_corpus().passages}


@pytest.fixture()
def server(hashing):
    retriever = FaissRetriever.from_passages(load_demo_corpus().passages, hashing)
    return create_mcp_server(S3Searcher(ScriptedClient.one_search("Ketroul currency"), retriever), remember=4)


def test_tools_resources_and_errors_in_process(server) -> None:
    async def main() -> None:
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"search", "retrieve"}
            assert tools["search"].input_schema["required"] == ["question"]
            assert tools["retrieve"].input_schema["properties"]["k"]["maximum"] == 50
            assert {"passages", "queries", "stop_reason"} <= set(tools["search"].output_schema["properties"])

            found = await client.call_tool("search", {"question": QUESTION})
            assert not found.is_error
            result = found.structured_content
            assert result["queries"] == ["Ketroul currency"] and result["passages"][0]["title"] == "Ketroul"
            assert result["passages"][0]["uri"] == f"passage://{result['passages'][0]['id']}"
            assert "Ketroul" in found.content[0].text  # the same result as text, for clients without structure

            read = await client.read_resource(result["passages"][0]["uri"])
            assert read.contents[0].text.startswith("Ketroul\n") and "mobroun" in read.contents[0].text
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["passage://{passage_id}"]

            top = await client.call_tool("retrieve", {"query": "Gritia", "k": 4})
            assert [p["title"] for p in top.structured_content["passages"]][0] == "Gritia"
            assert len(top.structured_content["passages"]) == 4
            # Only the last `remember` (4) passages stay readable: the search's are gone now.
            with pytest.raises(MCPError, match="has not been returned"):
                await client.read_resource(result["passages"][0]["uri"])

            for name, args, problem in [("retrieve", {"query": "x", "k": 500}, "less than or equal to 50"),
                                        ("retrieve", {"query": ""}, "at least 1 character"),
                                        ("search", {"question": "x" * 4001}, "at most 4000 characters"),
                                        ("search", {}, "question")]:
                bad = await client.call_tool(name, args)
                assert bad.is_error and problem in bad.content[0].text, bad.content[0].text

    asyncio.run(main())


@pytest.fixture()
def mcp_http(monkeypatch, capsys) -> Iterator[Callable[..., ThreadedServer]]:
    """``s3 mcp --transport http ARGS`` as a user types it, run in this process: the command opens the searcher and
    builds and guards the app as it does for a user; a :class:`ThreadedServer` (uvicorn configured as
    ``run_uvicorn`` configures it) serves that app instead of blocking."""
    servers: list[ThreadedServer] = []

    def serve(app: Any, *, host: str, port: int, limits: Any, **_: Any) -> None:
        assert host == "127.0.0.1"
        servers.append(ThreadedServer(app, limits))

    monkeypatch.setattr("s3_agents.server.connections.run_uvicorn", serve)

    def start(*args: str) -> ThreadedServer:
        result = run_main(capsys, "mcp", "--transport", "http", *args)
        assert result.code == 0 and servers, result.err
        assert "MCP server (streamable HTTP) on http://127.0.0.1:" in result.err
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def policy_args(llama_server) -> list[str]:
    return ["--policy-url", llama_server.url, "--policy-model", llama_server.model, "--config", "8-3-1",
            "--constrained"]


def check_search(result, demo_ids: dict[str, str]) -> None:
    assert not result.is_error, result.content[0].text
    found = result.structured_content
    assert found["question"] == QUESTION and isinstance(found["queries"], list)
    assert found["passages"] and all(demo_ids[p["id"]] == p["title"] for p in found["passages"])


@pytest.mark.slow
def test_the_shipped_searcher_is_served_as_the_library_runs_it(capsys, mcp_http) -> None:
    """``s3 mcp --trained``: the default shipped searcher over the real corpus it ships with (indexed once into the
    default cache; `s3 demo --trained` checks a fresh cache) gives what the library gives for the same question
    (greedy, same policy and index). The stdio transport, as an MCP client starts it, runs as a subprocess in
    docs/integrations.md's example (tests/integrations/test_doc_examples.py)."""
    from s3_agents.trained import trained_config, trained_searcher
    from s3_agents.worlds import default_world_dir, default_world_retriever, load_world

    real = load_world(default_world_dir("realqa"))
    titles = {p.id: p.title for p in real.passages}
    question = real.sample("dev", 1)[0]["question"]
    retriever = default_world_retriever(name="realqa")
    policy = trained_searcher()
    expected = S3Searcher(policy, retriever, trained_config()).search(question)
    policy.close()
    url = mcp_http("--trained").url + "/mcp"

    async def main() -> None:
        async with httpx2.AsyncClient(timeout=300) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                found = await client.call_tool("search", {"question": question})
                assert not found.is_error, found.content[0].text
                passages = found.structured_content["passages"]
                assert passages and all(titles[p["id"]] == p["title"] for p in passages)
                assert found.structured_content["queries"] == expected["queries"]
                assert [p["id"] for p in passages] == [p.id for p in expected["context"]]
                top = await client.call_tool("retrieve", {"query": question, "k": 2})
                assert [p["id"] for p in top.structured_content["passages"]] == \
                    [p.id for p in retriever.search([question], 2)[0]]

    asyncio.run(main())
    bad = run_main(capsys, "mcp", "--trained", "--policy-url", "http://127.0.0.1:9/v1")
    assert bad.code == 2 and "drop --policy-url" in bad.err


@pytest.mark.slow
def test_http_transport_needs_the_key_and_a_loopback_host(llama_server, demo_ids, mcp_http) -> None:
    server = mcp_http("--api-key", "s3cret", *policy_args(llama_server))
    url = server.url + "/mcp"
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=hello, headers=headers).status_code == 401
    assert httpx.post(url, json=hello, headers={**headers, "Authorization": "Bearer wrong"}).status_code == 401
    keyed = {**headers, "Authorization": "Bearer s3cret"}
    rebound = httpx.post(url, json=hello, headers={**keyed, "Host": "evil.example"})
    assert rebound.status_code == 400 and "--allowed-host" in rebound.text
    assert httpx.post(url, json=hello, headers={**keyed, "Origin": "http://evil.example"}).status_code == 403

    async def main() -> None:
        async with httpx2.AsyncClient(headers={"X-API-Key": "s3cret"}, timeout=300) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                check_search(await client.call_tool("search", {"question": QUESTION}), demo_ids)

    asyncio.run(main())
