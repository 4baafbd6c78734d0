"""The ``s3`` command line: build indexes, serve and query them."""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="s3",
    help="s3-agents: search agents for retrieval-augmented generation.\n\n"
         "Start with `s3 serve` (serves a demo corpus) and `s3 retrieve \"question\"`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build and inspect retrieval indexes.", no_args_is_help=True)
corpus_app = typer.Typer(help="Check corpora and export the demo corpus.", no_args_is_help=True)
data_app = typer.Typer(help="Generate benchmark data.", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(corpus_app, name="corpus")
app.add_typer(data_app, name="data")


class BackendName(StrEnum):
    faiss = "faiss"
    qdrant = "qdrant"
    bm25 = "bm25"


class IndexTypeName(StrEnum):
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _info(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.BRIGHT_BLACK)


def _demo_retriever(embedder_spec: str) -> Any:
    from s3_agents.corpus import load_demo_corpus
    from s3_agents.embedders import load_embedder
    from s3_agents.retrievers import FaissRetriever

    corpus = load_demo_corpus()
    _info(f"no index given: indexing the demo corpus ({len(corpus)} passages) in memory with {embedder_spec}")
    return FaissRetriever.from_passages(corpus.passages, load_embedder(embedder_spec))


def open_retriever(index: str | None, url: str | None, *, api_key: str | None = None,
                   embedder: str = "minilm") -> Any:
    """The retriever a command was pointed at: ``--url`` server, ``--index`` directory, or the demo corpus."""
    from s3_agents.retrievers import RemoteRetriever, load_retriever

    if index and url:
        raise typer.BadParameter("give --index or --url, not both")
    if url:
        return RemoteRetriever(url, api_key=api_key)
    return load_retriever(index) if index else _demo_retriever(embedder)


EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", "-e",
    help="Embedder spec: minilm (offline default), hashing[:dim], e5:<hf-model>, or any "
         "sentence-transformers model id / directory.")]


@index_app.command("build")
def index_build(
    corpus: Annotated[Path, typer.Argument(help="JSONL corpus ({id, contents} or {id, title, text}).")],
    out: Annotated[Path, typer.Argument(help="Index directory to create or update.")],
    backend: Annotated[BackendName, typer.Option(help="Index backend.")] = BackendName.faiss,
    index_type: Annotated[IndexTypeName, typer.Option(help="FAISS index type.")] = IndexTypeName.flat,
    embedder: EmbedderOpt = "minilm",
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per embedding batch.")] = 64,
    chunk_size: Annotated[int, typer.Option(min=1, help="Passages per saved (resumable) chunk.")] = 2048,
    skip_bad_lines: Annotated[bool, typer.Option(
        help="Skip malformed corpus lines (counted) instead of stopping.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard the saved work of an interrupted build.")] = False,
    collection: Annotated[str, typer.Option(help="Qdrant collection (alias) name.")] = "s3",
    qdrant_url: Annotated[str | None, typer.Option(
        help="Qdrant server URL; default: local on-disk storage in OUT.")] = None,
    qdrant_api_key: Annotated[str | None, typer.Option(
        envvar="QDRANT_API_KEY", help="Qdrant API key (never stored).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build a FAISS, Qdrant or BM25 index from a corpus (atomic; resumes an interrupted build)."""
    from s3_agents.corpus import load_corpus
    from s3_agents.embedders import SentenceTransformerEmbedder, load_embedder
    from s3_agents.retrievers import build_index

    data = load_corpus(corpus, skip_bad_lines=skip_bad_lines)
    _info(data.summary())
    if not data.passages:
        _fail(f"{corpus} holds no passages")
    options: dict[str, Any] = {"show_progress": not quiet}
    emb = None
    if backend is not BackendName.bm25:
        emb = load_embedder(embedder)
        if isinstance(emb, SentenceTransformerEmbedder):
            emb.batch_size = batch_size
        options.update(chunk_size=chunk_size, restart=restart)
    if backend is BackendName.faiss:
        options["index_type"] = index_type.value
    if backend is BackendName.qdrant:
        options.update(collection=collection, url=qdrant_url, api_key=qdrant_api_key)
    gen = build_index(data.passages, out, backend=backend.value, embedder=emb, **options)
    typer.echo(f"built {backend.value} index of {len(data.passages)} passages at {out} ({gen.name})")
    if data.bad_lines:
        typer.echo(f"skipped {len(data.bad_lines)} bad line(s) in {corpus}")


@index_app.command("info")
def index_info(path: Annotated[Path, typer.Argument(help="Index directory.")]) -> None:
    """Print an index directory's metadata."""
    from s3_agents.retrievers._store import IndexStore

    typer.echo(json.dumps(IndexStore(path).read_meta(), indent=2))


@app.command()
def serve(
    index: Annotated[str | None, typer.Option(
        "--index", "-i", help="Index directory; default: the demo corpus.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port (s3 scripts use 3000).")] = 3000,
    api_key: Annotated[str | None, typer.Option(envvar="S3_API_KEY", help="Require this key on /retrieve.")] = None,
    embedder: EmbedderOpt = "minilm",
    max_queries: Annotated[int, typer.Option(min=1, help="Queries per request.")] = 512,
    max_topk: Annotated[int, typer.Option(min=1, help="Largest topk.")] = 100,
    default_topk: Annotated[int, typer.Option(min=1, help="topk when a request sends none.")] = 3,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body.")] = 1_000_000,
    max_query_chars: Annotated[int, typer.Option(min=1, help="Longest query.")] = 4_000,
    max_request_chars: Annotated[int, typer.Option(min=1, help="Query characters per request.")] = 100_000,
    max_batch: Annotated[int, typer.Option(min=1, help="Queries per batched index call.")] = 256,
    max_batch_chars: Annotated[int, typer.Option(
        min=1, help="Query characters per index call: the slice of a large request run before others' turn.")] = 2_000,
    body_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to send a request body (then 408).")] = 30.0,
    request_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds to serve a request once its body is in (then 503 or 504).")] = 60.0,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Host name to answer besides the loopback names (repeatable; '*' for any). Bound elsewhere than "
             "loopback, the default is any.")] = None,
    docs: Annotated[bool, typer.Option(help="Serve /docs, /redoc and /openapi.json (off by default).")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info (one line per request), warning or error.")] = "info",
) -> None:
    """Serve POST /retrieve (s3 / Search-R1 compatible) and GET /health."""
    from s3_agents.retrievers import load_retriever
    from s3_agents.server import ServerLimits, check_api_key
    from s3_agents.server import serve as run_server
    from s3_agents.server.guards import is_loopback

    if default_topk > max_topk:
        raise typer.BadParameter("--default-topk must not exceed --max-topk")
    try:
        check_api_key(api_key)
    except ValueError as err:
        raise typer.BadParameter(f"--api-key: {err}") from err
    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("--log-level must be debug, info, warning or error")
    retriever = load_retriever(index) if index else _demo_retriever(embedder)
    limits = ServerLimits(max_queries=max_queries, max_topk=max_topk, default_topk=default_topk,
                          max_body_bytes=max_body_bytes, max_query_chars=max_query_chars,
                          max_request_chars=max_request_chars, max_batch=max_batch, max_batch_chars=max_batch_chars,
                          body_timeout=body_timeout, request_timeout=request_timeout)
    if not is_loopback(host) and not api_key:
        _info(f"warning: binding {host} without --api-key exposes the index to the network")
    _info(f"serving {index or 'the demo corpus'} on http://{host}:{port}/retrieve")
    run_server(retriever, host=host, port=port, api_key=api_key, limits=limits, docs=docs,
               allowed_hosts=allowed_host or (), log_level=log_level,
               info={"index": Path(index).name if index else "demo"})   # /health is open: a name, not a path


@app.command()
def retrieve(
    queries: Annotated[list[str], typer.Argument(help="One or more queries.")],
    index: Annotated[str | None, typer.Option("--index", "-i", help="Index directory.")] = None,
    url: Annotated[str | None, typer.Option(help="Retrieval server URL instead of an index.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages per query.")] = 3,
    api_key: Annotated[str | None, typer.Option(
        "--retriever-key", "--api-key", help="Key of the server at --url; default: $S3_RETRIEVER_KEY.")] = None,
    embedder: EmbedderOpt = "minilm",
    as_json: Annotated[bool, typer.Option("--json", help="Print the s3 JSON reply shape.")] = False,
) -> None:
    """Print the top-k passages for each query (demo corpus when no --index or --url)."""
    retriever = open_retriever(index, url, api_key=api_key, embedder=embedder)
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


@corpus_app.command("check")
def corpus_check(
    path: Annotated[Path, typer.Argument(help="JSONL corpus.")],
    show: Annotated[int, typer.Option(help="Bad lines to list.")] = 10,
) -> None:
    """Validate a corpus; list bad lines with their numbers (exit 1 if any, or if it holds no passage)."""
    from s3_agents.corpus import load_corpus

    data = load_corpus(path, skip_bad_lines=True)
    typer.echo(data.summary())
    for bad in data.bad_lines[:show]:
        typer.echo(f"  line {bad.line_no}: {bad.reason}")
    if not data.passages:
        typer.echo(f"error: no passages in {path}", err=True)
    if data.bad_lines or not data.passages:
        raise typer.Exit(code=1)


@corpus_app.command("demo")
def corpus_demo(out: Annotated[Path, typer.Argument(help="Folder to write into.")]) -> None:
    """Write the demo corpus and its multi-hop questions to a folder."""
    from s3_agents.demo_world import write_demo_files

    for path in write_demo_files(out):
        typer.echo(f"wrote {path}")


@data_app.command("world")
def data_world(
    out: Annotated[Path, typer.Argument(help="Folder to write corpus.jsonl, train/dev/test.jsonl, world.json into.")],
    passages: Annotated[int, typer.Option(min=200, help="Corpus size (passages, about).")] = 2000,
    seed: Annotated[int, typer.Option(help="Generator seed: same size and seed, same world.")] = 7,
    measure: Annotated[bool, typer.Option(
        help="Index the corpus (MiniLM, FAISS flat, in memory) and report the test split's headroom: naive top-3 "
             "answer-in-context and the oracle chain's top-10 recall.")] = False,
    embedder: Annotated[str, typer.Option(help="Embedder for --measure.")] = "minilm",
) -> None:
    """Generate a synthetic multi-hop benchmark world (2-4 hop bridge and comparison questions, splits)."""
    from s3_agents.world import build_world, measure_world, write_world

    world = build_world(passages, seed=seed)
    for path in write_world(world, out).values():
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(world.passages)} passages; questions: "
               + ", ".join(f"{split} {len(world.split(split))}" for split in ("train", "dev", "test")))
    if measure:
        from s3_agents.embedders import load_embedder
        from s3_agents.retrievers import FaissRetriever

        retriever = FaissRetriever.from_passages(world.passages, load_embedder(embedder))
        report = measure_world(world, retriever)
        typer.echo(json.dumps(report, indent=1))


def _register_search_commands() -> None:
    from s3_agents import _cli_search

    app.command("search")(_cli_search.search)
    app.command("demo")(_cli_search.demo)
    app.command("precompute")(_cli_search.precompute)
    from s3_agents import _cli_eval

    app.command("eval")(_cli_eval.eval_command)


_register_search_commands()


def _register_plugins() -> None:
    """Sub-commands from installed packages (entry point group ``s3_agents.cli``), e.g. ``s3 train``.

    The core names no plugin: the ``training`` package registers ``train`` in pyproject.toml. A
    plugin that fails to import (its extra not installed) becomes a command that says how to install it.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group="s3_agents.cli"):
        try:
            app.add_typer(entry.load(), name=entry.name)
        except ImportError as err:
            _add_missing(entry.name, err)


def _add_missing(name: str, err: ImportError) -> None:
    message = f"`s3 {name}` is unavailable ({err}); install its extra, e.g. pip install \"s3-agents[train]\""

    @app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 help=f"(unavailable: {err})")
    def missing() -> None:
        _fail(message)


_register_plugins()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``s3`` console script; turns known errors into one-line messages."""
    from s3_agents.errors import S3Error

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars in CLI output
    logging.getLogger("s3_agents").setLevel(logging.INFO)
    try:
        app(args=argv, prog_name="s3")  # standalone: usage errors exit 2 with click's message
    except (S3Error, OSError, ValueError, ImportError, RuntimeError) as err:  # one line, no traceback
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)

if __name__ == "__main__":
    main()
