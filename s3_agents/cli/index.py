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


class QuantizationName(StrEnum):
    none = "none"
    int8 = "int8"
    binary = "binary"
    pq = "pq"


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
    rerank: Annotated[bool, typer.Option(
        help="FAISS: keep the full vectors on disk and rescore 4x k candidates with them (exact scores and "
             "near-flat recall from a compressed index; memory holds only its codes).")] = False,
    embedder: EmbedderOpt = "minilm",
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per embedding batch.")] = 64,
    device: Annotated[str | None, typer.Option(
        help="Embedder device: cuda, cuda:1, cpu, mps (default: a GPU when one is present).")] = None,
    precision: Annotated[str, typer.Option(
        help="Embedder precision: auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 or bf16.")] = "auto",
    threads: Annotated[int | None, typer.Option(
        min=1, help="Embedder CPU threads (default: one per core); fewer when other heavy work shares them.")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Passages per saved (resumable) chunk.")] = 2048,
    ray: Annotated[str | None, typer.Option(
        help="Embed on a Ray cluster with Ray Data: auto, host:6379, ray://host:10001, or local.")] = None,
    ray_workers: Annotated[int, typer.Option(min=1, help="Ray workers embedding at once (one model each).")] = 2,
    ray_gpus: Annotated[float, typer.Option(min=0, help="GPUs per Ray worker (0: CPU workers).")] = 0.0,
    skip_bad_lines: Annotated[bool, typer.Option(
        help="Skip malformed corpus lines (counted) instead of stopping.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard the saved work of an interrupted build.")] = False,
    hnsw_m: Annotated[int | None, typer.Option(min=2, help="HNSW edges per node (FAISS hnsw: 32, Qdrant: 16).")] = None,
    quantization: Annotated[QuantizationName, typer.Option(
        help="Qdrant Edge vector quantization: int8 (4x smaller), binary (32x), pq (16x); search rescores with "
             "the original vectors.")] = QuantizationName.none,
    collection: Annotated[str, typer.Option(help="Qdrant server collection (alias) name.")] = "s3",
    qdrant_url: Annotated[str | None, typer.Option(
        help="Qdrant server URL; default: Qdrant Edge, the engine embedded, stored in OUT.")] = None,
    qdrant_api_key: Annotated[str | None, typer.Option(
        envvar="QDRANT_API_KEY", help="Qdrant API key (never stored).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build a FAISS, Qdrant or BM25 index from a corpus (atomic; resumes an interrupted build)."""
    from s3_agents.corpus import load_corpus
    from s3_agents.embedders import SentenceTransformerEmbedder
    from s3_agents.retrievers import build_index

    if backend is not BackendName.faiss and (index_factory or nlist or pq_m or nprobe or rerank):
        raise typer.BadParameter("--index-factory, --nlist, --pq-m, --nprobe and --rerank are FAISS options "
                                 "(--backend faiss)")
    edge = backend is BackendName.qdrant and not qdrant_url
    if quantization is not QuantizationName.none and not edge:
        raise typer.BadParameter("--quantization is a Qdrant Edge option (--backend qdrant without --qdrant-url)")
    data = load_corpus(corpus, skip_bad_lines=skip_bad_lines)
    info(data.summary())
    if not data.passages:
        fail(f"{corpus} holds no passages")
    options: dict[str, Any] = {"show_progress": not quiet}
    emb = None
    if backend is not BackendName.bm25:
        emb = open_embedder(embedder, batch_size=batch_size, device=device, precision=precision, threads=threads)
        if isinstance(emb, SentenceTransformerEmbedder):
            info(f"embedding with {emb.spec} on {emb.device} ({emb.precision})")
        options.update(chunk_size=chunk_size, restart=restart)
        if ray:
            from s3_agents.retrievers.ray_embed import RayEmbedding

            options.update(distribute=RayEmbedding(ray, workers=ray_workers, gpus_per_worker=ray_gpus,
                                                   batch_size=batch_size))
    elif ray:
        raise typer.BadParameter("--ray embeds passages; BM25 has nothing to embed")
    if backend is BackendName.faiss:
        options.update(index_type=index_type.value, factory=index_factory, nlist=nlist, pq_m=pq_m, nprobe=nprobe,
                       rerank=rerank)
    if hnsw_m is not None and (backend is BackendName.faiss or edge):
        options.update(hnsw_m=hnsw_m)
    if edge:
        options.update(quantization=quantization.value)
    elif backend is BackendName.qdrant:
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


def _edge_shard(index: Path) -> tuple[Path, dict[str, Any]]:
    from s3_agents.retrievers._store import IndexStore
    from s3_agents.retrievers.qdrant_edge import SHARD_DIR

    store = IndexStore(index)
    gen = store.require_current()
    meta = store.read_meta()
    if meta.get("engine") != "edge":
        fail(f"{index} is not a Qdrant Edge index (build it with --backend qdrant)")
    return gen / SHARD_DIR, meta


@index_app.command("snapshot")
def index_snapshot(
    index: Annotated[Path, typer.Argument(help="A Qdrant Edge index directory.")],
    out: Annotated[Path, typer.Argument(help="The snapshot file to write (a tar archive).")],
) -> None:
    """Pack a Qdrant Edge index as a Qdrant shard snapshot, for a server or another machine."""
    from s3_agents.retrievers.qdrant_edge import write_shard_snapshot

    shard, _ = _edge_shard(index)
    write_shard_snapshot(shard, out)
    typer.echo(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


@index_app.command("push")
def index_push(
    index: Annotated[Path, typer.Argument(help="A Qdrant Edge index directory.")],
    url: Annotated[str, typer.Option(help="Qdrant server URL, e.g. http://qdrant:6333.")],
    collection: Annotated[str, typer.Option(help="Collection to create (when missing) and fill.")] = "s3",
    shard_id: Annotated[int, typer.Option(min=0, help="Shard of the collection the snapshot replaces.")] = 0,
    api_key: Annotated[str | None, typer.Option(envvar="QDRANT_API_KEY", help="Qdrant API key.")] = None,
    timeout: Annotated[int, typer.Option(min=1, help="Seconds for the upload.")] = 600,
) -> None:
    """Upload a Qdrant Edge index to a Qdrant server or cluster as a shard snapshot."""
    import tempfile

    from s3_agents.retrievers.qdrant_edge import push_shard_snapshot, write_shard_snapshot

    shard, meta = _edge_shard(index)
    with usage("--url"), tempfile.TemporaryDirectory(dir=index) as tmp:
        snapshot = write_shard_snapshot(shard, Path(tmp) / "shard.snapshot")
        push_shard_snapshot(snapshot, url, collection, dim=int(meta["dim"]), api_key=api_key, shard_id=shard_id,
                            hnsw_m=int(meta.get("hnsw_m") or 16), ef_construct=int(meta.get("ef_construct") or 100),
                            timeout=timeout)
    typer.echo(f"pushed {index} to {url} as shard {shard_id} of collection {collection!r}")
