"""``s3 serve`` and ``s3 retrieve``: the retrieval server and a query against an index or a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s3_agents.cli.options import (
    EfSearchOpt,
    EmbedderOpt,
    NprobeOpt,
    check_server_options,
    info,
    open_retriever,
)
from s3_agents.cli.settings import settings_options
from s3_agents.config import ServerLimits

__all__ = ["serve", "retrieve"]


@settings_options(ServerLimits, "limits", hint="the server's limits")
def serve(
    index: Annotated[str | None, typer.Option(
        "--index", "-i", help="Index directory; default: the demo corpus.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port (s3 scripts use 3000).")] = 3000,
    api_key: Annotated[str | None, typer.Option(envvar="S3_API_KEY", help="Require this key on /retrieve.")] = None,
    embedder: EmbedderOpt = "minilm",
    nprobe: NprobeOpt = None,
    ef_search: EfSearchOpt = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Host name to answer besides the loopback names (repeatable; '*' for any). Bound elsewhere than "
             "loopback, the default is any.")] = None,
    docs: Annotated[bool, typer.Option(help="Serve /docs, /redoc and /openapi.json (off by default).")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info (one line per request), warning or error.")] = "info",
    *,
    limits: ServerLimits,
) -> None:
    """Serve POST /retrieve (s3 / Search-R1 compatible) and GET /health."""
    from s3_agents.retrievers.remote import public_url
    from s3_agents.server import serve as run_server

    check_server_options(host, api_key, log_level, "the index")
    retriever = open_retriever(index, None, embedder=embedder, nprobe=nprobe, ef_search=ef_search)
    # /health is open and logs travel: a directory's name, not its path; an upstream's scheme, host and port,
    # never its credentials or query string.
    if not index:
        shown, logged = "demo", "the demo corpus"
    elif index.startswith(("http://", "https://")):
        shown = logged = public_url(index, path=False)
    else:
        shown, logged = Path(index).name, index
    info(f"serving {logged} on http://{host}:{port}/retrieve")
    run_server(retriever, host=host, port=port, api_key=api_key, limits=limits, docs=docs,
               allowed_hosts=allowed_host or (), log_level=log_level, info={"index": shown})


def retrieve(
    queries: Annotated[list[str], typer.Argument(help="One or more queries.")],
    index: Annotated[str | None, typer.Option("--index", "-i", help="Index directory.")] = None,
    url: Annotated[str | None, typer.Option(help="Retrieval server URL instead of an index.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages per query.")] = 3,
    api_key: Annotated[str | None, typer.Option(
        "--retriever-key", "--api-key", help="Key of the server at --url; default: $S3_RETRIEVER_KEY.")] = None,
    embedder: EmbedderOpt = "minilm",
    nprobe: NprobeOpt = None,
    ef_search: EfSearchOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the s3 JSON reply shape.")] = False,
) -> None:
    """Print the top-k passages for each query (demo corpus when no --index or --url)."""
    retriever = open_retriever(index, url, api_key=api_key, embedder=embedder, nprobe=nprobe, ef_search=ef_search)
    with retriever:
        results = retriever.search(queries, k)
    if as_json:
        typer.echo(json.dumps({"result": [[{"document": p.to_document(), "score": p.score} for p in hits]
                                          for hits in results]}, indent=2))
        return
    for query, hits in zip(queries, results):
        typer.secho(f"? {query}", bold=True)
        for rank, p in enumerate(hits, 1):
            score = "" if p.score is None else f"{p.score:.3f}  "
            typer.echo(f"  {rank}. {score}[{p.id}] {p.title}: {p.text[:160]}")
