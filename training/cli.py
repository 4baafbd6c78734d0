"""``s3 train``: prepare data, check a setup, launch verl PPO, export the trained searcher.

Plugged into the ``s3`` command through the ``s3_agents.cli`` entry point (see pyproject.toml), so the
core never imports this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Train the searcher with verl PPO: prepare data, check, run, export.", no_args_is_help=True)

Files = Annotated[list[Path], typer.Option("--train", help="Training parquet (repeat for several).")]
Retriever = Annotated[str, typer.Option(help="Index directory or retrieval-server URL (s3 serve).")]
GenUrl = Annotated[str, typer.Option(help="OpenAI-compatible endpoint of the frozen generator.")]
GenModel = Annotated[str, typer.Option(help="Model name at --generator-url.")]
Cache = Annotated[Path, typer.Option(help="SQLite of naive-RAG baselines (s3 precompute).")]


@app.command()
def prepare(
    questions: Annotated[Path, typer.Argument(help='QA JSONL: {"question", "golden_answers" | "answers"} per line.')],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")] = Path("data/train.parquet"),
    data_source: Annotated[str, typer.Option(help="data_source of rows that name none.")] = "s3_qa",
    split: Annotated[str, typer.Option(help="extra_info.split")] = "train",
    rag_cache: Annotated[Path | None, typer.Option(help="Naive-RAG cache for --rag-fails-only.")] = None,
    index: Annotated[str | None, typer.Option("--index", "-i", help="Index directory the cache was made with.")] = None,
    url: Annotated[str | None, typer.Option(help="Retrieval-server URL the cache was made with.")] = None,
    generator_model: Annotated[str | None, typer.Option(help="Generator the cache was made with.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Naive-RAG documents of the cache (s3: 3).")] = 3,
    rag_fails_only: Annotated[bool, typer.Option(
        help="s3's filter: keep only questions naive RAG answers wrong (needs --rag-cache).")] = False,
    keep_yes_no: Annotated[bool, typer.Option(help="Keep yes/no/true/false questions.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
) -> None:
    """Turn QA JSONL into verl parquet rows for the s3_searcher agent loop."""
    from s3_agents.qa import load_qa
    from s3_agents.rag_cache import RagCache
    from training.data import prepare_dataset
    from training.reward import retriever_id

    items = load_qa(questions)[:limit] if limit else load_qa(questions)
    cache = None
    if rag_fails_only:
        if rag_cache is None or not rag_cache.is_file():
            raise typer.BadParameter("--rag-fails-only needs --rag-cache: an existing cache from `s3 precompute`")
        if not generator_model or not (index or url):
            raise typer.BadParameter("--rag-fails-only needs --generator-model and --index or --url: "
                                     "the cache rows are keyed by retriever and generator")
        cache = RagCache(rag_cache, retriever_id=retriever_id(url or index or ""), generator_id=generator_model, k=k)
    report = prepare_dataset(items, out, data_source=data_source, split=split, rag_cache=cache,
                             drop_rag_successes=rag_fails_only, drop_yes_no=not keep_yes_no)
    typer.echo(report.summary())
    if rag_fails_only and report.no_baseline:
        typer.secho(f"{report.no_baseline} questions had no baseline in {rag_cache}: run `s3 precompute` on the "
                    "same questions with the same retriever and generator", fg=typer.colors.YELLOW, err=True)


def _job(model: str, train: list[Path], val: list[Path] | None, retriever: str, generator_url: str,
         generator_model: str, rag_cache: Path, preset: str, search: str, variant: str, output_dir: Path,
         n_gpus: int | None, steps: int | None, overrides: list[str] | None):
    from training.launch import TrainJob

    return TrainJob(model=model, train_files=[str(p) for p in train], val_files=[str(p) for p in val or []] or None,
                    retriever=retriever, generator_url=generator_url, generator_model=generator_model,
                    rag_cache=str(rag_cache), preset=preset, search=search, variant=variant,  # type: ignore[arg-type]
                    output_dir=str(output_dir), n_gpus=n_gpus, steps=steps, extra_overrides=list(overrides or []))


@app.command()
def run(
    model: Annotated[str, typer.Option(help="Searcher to train: hub id or local folder.")],
    train: Files,
    retriever: Retriever,
    generator_url: GenUrl,
    generator_model: GenModel,
    rag_cache: Cache = Path("rag_cache.sqlite"),
    val: Annotated[list[Path] | None, typer.Option(help="Validation parquet (default: --train).")] = None,
    preset: Annotated[str, typer.Option(help="s3_ppo_1gpu (one GPU) or s3_ppo (the paper: 5 GPUs).")] = "s3_ppo_1gpu",
    search: Annotated[str, typer.Option(help="<retrieved>-<selected>-<turns>.")] = "8-3-3",
    variant: Annotated[str, typer.Option(help="gbr (paper) or gbr+acc (s3 code).")] = "gbr",
    output_dir: Annotated[Path, typer.Option(help="Run folder (agent-loop YAML, checkpoints).")] = Path("runs/s3"),
    n_gpus: Annotated[int | None, typer.Option(min=1, help="GPUs per node (default: the preset's).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the preset's).")] = None,
    override: Annotated[list[str] | None, typer.Option(help="Extra Hydra override key=value (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Check what can be checked here and print the command.")] = False,
) -> None:
    """Launch verl PPO on the searcher, after checking GPU, vLLM, data, retriever and generator."""
    from training.launch import launch

    job = _job(model, train, val, retriever, generator_url, generator_model, rag_cache, preset, search, variant,
               output_dir, n_gpus, steps, override)
    raise typer.Exit(code=launch(job, dry_run=dry_run))


@app.command()
def check(
    model: Annotated[str, typer.Option(help="Searcher to train: hub id or local folder.")],
    train: Files,
    retriever: Retriever,
    generator_url: GenUrl,
    generator_model: GenModel,
    rag_cache: Cache = Path("rag_cache.sqlite"),
    preset: Annotated[str, typer.Option(help="s3_ppo_1gpu or s3_ppo.")] = "s3_ppo_1gpu",
    n_gpus: Annotated[int | None, typer.Option(min=1, help="GPUs per node.")] = None,
) -> None:
    """Report everything missing for `s3 train run` (exit 1 if anything is)."""
    from training.launch import preflight

    job = _job(model, train, None, retriever, generator_url, generator_model, rag_cache, preset, "8-3-3", "gbr",
               Path("runs/s3"), n_gpus, None, None)
    problems = preflight(job)
    for problem in problems:
        typer.secho(f"- {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("ready: `s3 train run` with the same options will start verl")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="verl run/checkpoint folder (or a Hugging Face folder).")],
    out: Annotated[Path, typer.Argument(help="Hugging Face folder to write.")],
) -> None:
    """Merge the trained actor into a Hugging Face folder (TransformersClient, vllm serve)."""
    from training.export import export_policy

    path = export_policy(checkpoint, out)
    typer.echo(f"wrote {path}: use it as the searcher with TransformersClient('{path}') or `vllm serve {path}`")
