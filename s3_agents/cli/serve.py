"""``s3 serve`` and ``s3 retrieve``: the retrieval server and a query against an index or a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s3_agents.cli.options import EmbedderOpt, check_server_options, info
from s3_agents.cli.searching import RetrieverOptions, retriever_options
from s3_agents.cli.settings import settings_options
from s3_agents.config import ServerLimits

__all__ = ["serve", "retrieve"]


@retriever_options(include=("index", "nprobe", "ef_search"))
@settings_options(ServerLimits, "limits", hint="the server's limits")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port (s3 scripts use 3000).")] = 3000,
    api_key: Annotated[str | None, typer.Option(envvar="S3_API_KEY", help="Require this key on /retrieve.")] = None,
    embedder: EmbedderOpt = "minilm",
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Host name to answer besides the loopback names (repeatable; '*' for any). Bound elsewhere than "
             "loopback, the default is any.")] = None,
    docs: Annotated[bool, typer.Option(help="Serve /docs, /redoc and /openapi.json (off by default).")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info (one line per request), warning or error.")] = "info",
    *,
    limits: ServerLimits,
    where: RetrieverOptions,
) -> None:
    """Serve POST /retrieve (s3 / Search-R1 compatible) and GET /health."""
    from s3_agents.retrievers.remote import public_url
    from s3_agents.server import serve as run_server

    check_server_options(host, api_key, log_level, "the index")
    retriever, index = where.open(embedder), where.index
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


@retriever_options(retriever_key=("--retriever-key", "--api-key"))
def retrieve(
    queries: Annotated[list[str], typer.Argument(help="One or more queries.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Passages per query.")] = 3,
    embedder: EmbedderOpt = "minilm",
    as_json: Annotated[bool, typer.Option("--json", help="Print the s3 JSON reply shape.")] = False,
    *,
    where: RetrieverOptions,
) -> None:
    """Print the top-k passages for each query (demo corpus when no --index or --url)."""
    retriever = where.open(embedder)
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
