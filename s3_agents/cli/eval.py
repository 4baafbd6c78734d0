"""``s3 eval``: methods x QA datasets with one generator, resumable, with a report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from s3_agents.cli.options import (
    ApiKey,
    ConfigName,
    GeneratorModel,
    GeneratorUrl,
    LlmTimeout,
    endpoint_or,
    open_retriever,
    usage,
)
from s3_agents.cli.searching import (
    PolicyOptions,
    RetrieverOptions,
    loop_options,
    open_search,
    policy_options,
    retriever_options,
)
from s3_agents.config import SearchConfig

__all__ = ["eval_command", "open_bm25"]


def _no_bm25() -> Any:
    raise typer.BadParameter("the -bm25 methods need a BM25 index: build one with `s3 index build CORPUS DIR "
                             "--backend bm25` and pass --bm25-index DIR (or a retrieval server's URL over it)",
                             param_hint="--methods")


def open_bm25(bm25_index: str | None, retriever: Any, *, demo: bool, api_key: str | None = None) -> Any:
    """The BM25 retriever of the ``-bm25`` methods: ``--bm25-index`` (a BM25 index directory, or the URL of a
    retrieval server over one), else the main one if it is BM25, else (demo corpus only) BM25 over the demo
    corpus in memory. ``api_key`` is the key of that server (default: ``$S3_RETRIEVER_KEY``)."""
    from s3_agents.corpus import load_demo_corpus
    from s3_agents.retrievers import BM25Retriever

    if bm25_index and bm25_index.startswith(("http://", "https://")):
        return open_retriever(None, bm25_index, api_key=api_key)
    if bm25_index:
        sparse = open_retriever(bm25_index, None)
        if not isinstance(sparse, BM25Retriever):
            raise typer.BadParameter(f"{bm25_index} is a {type(sparse).__name__} index, not BM25",
                                     param_hint="--bm25-index")
        return sparse
    if isinstance(retriever, BM25Retriever):
        return retriever
    if demo:
        return BM25Retriever.from_passages(load_demo_corpus().passages)
    return _no_bm25()


def _datasets(specs: list[str]) -> dict[str, Any]:
    from s3_agents.qa import load_demo_qa, load_qa

    out: dict[str, Any] = {}
    for spec in specs:
        if spec == "demo":
            out["demo"] = load_demo_qa()
        else:
            path = Path(spec)
            out[path.stem] = load_qa(path)
    return out


@retriever_options()
@policy_options
@loop_options(turn_tokens=True)
def eval_command(
    methods: Annotated[str, typer.Option(help="Comma-separated: no-retrieval, naive-rag, naive-rag-bm25, "
                                              "query-rewrite, query-rewrite-bm25, ircot, search-r1, "
                                              "search-r1-self, s3.")] = "naive-rag,s3",
    dataset: Annotated[list[str] | None, typer.Option(
        help="QA JSONL (FlashRAG/Search-R1 or {question, answers}), or `demo`; repeat for several.")] = None,
    bm25_index: Annotated[str | None, typer.Option(
        help="BM25 index directory or retrieval-server URL for the -bm25 methods (default: --index if it is "
             "BM25; for the demo corpus, BM25 in memory).")]
    = None,
    generator_url: GeneratorUrl = None,
    generator_model: GeneratorModel = None,
    api_key: ApiKey = None,
    timeout: LlmTimeout = 300.0,
    judge: Annotated[bool, typer.Option(help="GenAcc asks an LLM judge (yes/no) when span match fails.")] = True,
    judge_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint of the judge; default: the generator judges.")] = None,
    judge_model: Annotated[str | None, typer.Option(help="Model name at --judge-url.")] = None,
    config: ConfigName = "8-3-3",
    k: Annotated[int, typer.Option("-k", min=1, help="Documents per search of the baselines (paper: 3).")] = 3,
    max_turns: Annotated[int, typer.Option(min=1, help="Searches of IRCoT / Search-R1 (paper: 4).")] = 4,
    out: Annotated[Path, typer.Option(help="Folder for results.jsonl and the report.")] = Path("runs/eval"),
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight at once.")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions of each dataset.")] = None,
    *,
    where: RetrieverOptions,
    policy: PolicyOptions,
    loop: SearchConfig,
) -> None:
    """Evaluate methods on QA datasets with the same generator; resumes, prints the table, writes the report."""
    from s3_agents.evaluation import build_methods, evaluate, write_report
    from s3_agents.generator import Generator

    names = [n.strip() for n in methods.split(",") if n.strip()]
    datasets = _datasets(dataset or ["demo"])
    pieces = open_search(where, policy, loop, config, api_key=api_key, timeout=timeout)
    cfg, retriever = pieces.config, pieces.retriever
    gen_client = endpoint_or(generator_url, generator_model, api_key, "generator", pieces.client, timeout)
    judge_client = endpoint_or(judge_url, judge_model, api_key, "judge", gen_client, timeout)
    with usage("--methods"):
        chosen = build_methods(names, policy=pieces.client, retriever=retriever, generator=Generator(gen_client),
                               config=cfg, k=k, max_turns=max_turns, s3_policy=pieces.policy,
                               bm25=lambda: open_bm25(bm25_index, retriever, demo=not (where.index or where.url),
                                                      api_key=where.retriever_key))
    rows = asyncio.run(evaluate(chosen, datasets, out / "results.jsonl", judge=judge_client if judge else None,
                                concurrency=concurrency, limit=limit))
    judged = f"judge: {judge_client.model}" if judge else "judge off: span match only"
    budget = f", context capped at {cfg.max_context_docs} documents" if cfg.max_context_docs else ""
    notes = [f"Searcher / reasoner: {pieces.client.model}; generator: {gen_client.model}; {judged}; s3 config "
             f"{cfg.name}{' (constrained)' if cfg.constrained else ''}"
             f"{' (reference format)' if cfg.prompt_format == 'reference' else ''}"
             f"{budget}, k={k}, max turns {max_turns}."]
    report = write_report(rows, out, notes=notes)
    typer.echo(report["table"])
    typer.echo(f"\n{len(rows)} answers in {out / 'results.jsonl'}; report {out / 'report.md'} with plots, "
               f"trajectories in {out / 'report.html'}")
