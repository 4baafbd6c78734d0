"""``s3 corpus check``, ``s3 corpus demo``, ``s3 data world`` and the real-QA loaders (``s3 data hotpotqa`` ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s3_agents.cli.options import open_embedder, usage

__all__ = ["corpus_app", "data_app"]

corpus_app = typer.Typer(help="Check corpora and export the demo corpus.", no_args_is_help=True)
data_app = typer.Typer(help="Generate benchmark data, or read real multi-hop QA into a corpus and splits.",
                       no_args_is_help=True)


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
    from s3_agents.worlds import write_demo_files

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
    from s3_agents.worlds import build_world, measure_world, write_world

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


def _read_real(form: str, paths: list[Path], out: Path, train_extra: list[str], seed: int, shares: str,
               yes_no: bool, measure: bool, embedder: str) -> None:
    from s3_agents.realqa import FORMATS, pool_records, read_qa_records, write_real_qa

    extra = []
    for item in train_extra:
        name, _, path = item.partition("=")
        if name not in FORMATS or not path:
            raise typer.BadParameter(f"{item!r}: expected FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}",
                                     param_hint="--train-extra")
        extra.append((name, Path(path)))
    with usage("--shares"):
        parts = [float(x) for x in shares.split(",")]
    records = [r for path in paths for r in read_qa_records(path, form)]
    train_only = [r for name, path in extra for r in read_qa_records(path, name)]
    with usage("--shares"):
        world = pool_records(records, train_only=train_only, seed=seed, shares=parts, yes_no=yes_no)
    manifest = write_real_qa(world, out, sources=[*map(str, paths), *(str(p) for _, p in extra)], indexes=measure,
                             embedder=open_embedder(embedder) if measure else None)
    typer.echo(f"wrote {out}: {len(world.passages)} passages; questions: "
               + ", ".join(f"{split} {len(world.split(split))}" for split in ("train", "dev", "test")))
    for retriever, splits in manifest.get("headroom", {}).items():
        for split, figures in splits.items():
            typer.echo(f"{retriever:5} {split:5} " + "  ".join(
                f"{key} {value:.2f}" for key, value in figures.items() if key != "questions"))


_PATHS = Annotated[list[Path], typer.Argument(help="Dataset file(s), a JSON list or JSON lines (.gz too).")]
_OUT = Annotated[Path, typer.Argument(help="Folder to write corpus.jsonl, train/dev/test.jsonl, world.json (and "
                                           "index-dense, index-bm25) into.")]
_EXTRA = Annotated[list[str], typer.Option(
    help="FORMAT=PATH: another file whose questions all go to train (repeatable), e.g. musique=train.json.")]
_SEED = Annotated[int, typer.Option(help="Seed of the split: same questions and seed, same splits.")]
_SHARES = Annotated[str, typer.Option(help="Train,dev,test shares of the questions.")]
_YES_NO = Annotated[bool, typer.Option(help="Keep yes/no questions (no passage holds such an answer).")]
_MEASURE = Annotated[bool, typer.Option(
    help="Build index-dense (the embedder, FAISS) and index-bm25 and report each split's headroom: naive top-3 "
         "and top-10 answer-in-context and support recall, and the oracle queries' top-10 support recall.")]
_EMBEDDER = Annotated[str, typer.Option(help="Embedder of index-dense.")]


def _loader(form: str, title: str) -> None:
    def command(paths: _PATHS, out: _OUT, train_extra: _EXTRA = [], seed: _SEED = 0,  # noqa: B006 (typer)
                shares: _SHARES = "0.5,0.25,0.25", yes_no: _YES_NO = False, measure: _MEASURE = True,
                embedder: _EMBEDDER = "minilm") -> None:
        _read_real(form, paths, out, train_extra, seed, shares, yes_no, measure, embedder)

    command.__doc__ = (f"Read {title} into a pooled corpus and train/dev/test splits with supporting ids and oracle "
                       "query chains (the layout of `s3 data world`).")
    data_app.command(form)(command)


for _form, _title in (("hotpotqa", "HotpotQA (original JSON or the Hugging Face layout)"),
                      ("2wiki", "2WikiMultihopQA"), ("musique", "MuSiQue"),
                      ("flashrag", "FlashRAG / Search-R1 JSONL whose metadata holds the paragraphs")):
    _loader(_form, _title)
