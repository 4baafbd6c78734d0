"""``s3 corpus check``, ``s3 corpus demo`` and ``s3 data world``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s3_agents.cli.options import open_embedder, usage

__all__ = ["corpus_app", "data_app"]

corpus_app = typer.Typer(help="Check corpora and export the demo corpus.", no_args_is_help=True)
data_app = typer.Typer(help="Generate benchmark data.", no_args_is_help=True)


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

    with usage("--passages"):
        world = build_world(passages, seed=seed)
    for path in write_world(world, out).values():
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(world.passages)} passages; questions: "
               + ", ".join(f"{split} {len(world.split(split))}" for split in ("train", "dev", "test")))
    if measure:
        from s3_agents.retrievers import FaissRetriever

        retriever = FaissRetriever.from_passages(world.passages, open_embedder(embedder))
        report = measure_world(world, retriever)
        typer.echo(json.dumps(report, indent=1))
