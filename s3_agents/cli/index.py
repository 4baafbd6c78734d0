"""``s3 index build`` and ``s3 index info``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from s3_agents.cli.options import EmbedderOpt, fail, info, open_embedder, usage

__all__ = ["index_app"]

index_app = typer.Typer(help="Build and inspect retrieval indexes.", no_args_is_help=True)


class BackendName(StrEnum):
    faiss = "faiss"
    qdrant = "qdrant"
    bm25 = "bm25"


class IndexTypeName(StrEnum):
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"
    ivfpq = "ivfpq"
    opq = "opq"


@index_app.command("build")
def index_build(
    corpus: Annotated[Path, typer.Argument(help="JSONL corpus ({id, contents} or {id, title, text}).")],
    out: Annotated[Path, typer.Argument(help="Index directory to create or update.")],
    backend: Annotated[BackendName, typer.Option(help="Index backend.")] = BackendName.faiss,
    index_type: Annotated[IndexTypeName, typer.Option(
        help="FAISS index type: flat (exact), hnsw, ivf, ivfpq (compressed: 1/32 of flat's memory at 384-d) or "
             "opq (ivfpq after a learned rotation).")] = IndexTypeName.flat,
    index_factory: Annotated[str | None, typer.Option(
        help='Any FAISS index-factory string instead of --index-type, e.g. "OPQ64,IVF65536,PQ64".')] = None,
    nlist: Annotated[int | None, typer.Option(min=1, help="IVF lists (default about 4 sqrt(passages)).")] = None,
    pq_m: Annotated[int | None, typer.Option(
        min=1, help="PQ codes per vector, a divisor of the dimension (default one per 8 dimensions).")] = None,
    nprobe: Annotated[int | None, typer.Option(
        min=1, help="IVF lists searched per query, recorded as the index's default (16).")] = None,
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
    from s3_agents.embedders import SentenceTransformerEmbedder
    from s3_agents.retrievers import build_index

    if backend is not BackendName.faiss and (index_factory or nlist or pq_m or nprobe):
        raise typer.BadParameter("--index-factory, --nlist, --pq-m and --nprobe are FAISS options (--backend faiss)")
    data = load_corpus(corpus, skip_bad_lines=skip_bad_lines)
    info(data.summary())
    if not data.passages:
        fail(f"{corpus} holds no passages")
    options: dict[str, Any] = {"show_progress": not quiet}
    emb = None
    if backend is not BackendName.bm25:
        emb = open_embedder(embedder)
        if isinstance(emb, SentenceTransformerEmbedder):
            emb.batch_size = batch_size
        options.update(chunk_size=chunk_size, restart=restart)
    if backend is BackendName.faiss:
        options.update(index_type=index_type.value, factory=index_factory, nlist=nlist, pq_m=pq_m, nprobe=nprobe)
    if backend is BackendName.qdrant:
        options.update(collection=collection, url=qdrant_url, api_key=qdrant_api_key)
    with usage("--index-factory / --nlist / --pq-m"):
        gen = build_index(data.passages, out, backend=backend.value, embedder=emb, **options)
    typer.echo(f"built {backend.value} index of {len(data.passages)} passages at {out} ({gen.name})")
    if data.bad_lines:
        typer.echo(f"skipped {len(data.bad_lines)} bad line(s) in {corpus}")


@index_app.command("info")
def indexinfo(path: Annotated[Path, typer.Argument(help="Index directory.")]) -> None:
    """Print an index directory's metadata."""
    from s3_agents.retrievers._store import IndexStore

    typer.echo(json.dumps(IndexStore(path).read_meta(), indent=2))
