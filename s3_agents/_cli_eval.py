"""`s3 eval`: methods x datasets, scored, resumable, with a Markdown report and plots."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from s3_agents._cli_search import (
    ApiKey,
    ConfigName,
    GeneratorModel,
    GeneratorUrl,
    IndexOpt,
    PolicyGguf,
    PolicyModel,
    PolicyUrl,
    UrlOpt,
    _config,
    _generator_llm,
    _llm,
    _retriever,
)

__all__ = ["eval_command", "build_methods"]


def build_methods(names: list[str], *, policy: Any, retriever: Any, generator: Any, config: Any, k: int,
                  max_turns: int, bm25: bool = False) -> list[Any]:
    """The named methods; ``policy`` plays the searcher / reasoner / rewriter wherever one is needed."""
    from s3_agents.evaluation import (
        METHOD_NAMES,
        IRCoT,
        NaiveRAG,
        NoRetrieval,
        QueryRewrite,
        S3Method,
        SearchR1Style,
    )

    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise typer.BadParameter(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHOD_NAMES)}")
    make = {
        "no-retrieval": lambda: NoRetrieval(generator),
        "naive-rag": lambda: NaiveRAG(retriever, generator, k=k),
        "s3": lambda: S3Method(policy, retriever, generator, config),
        "query-rewrite": lambda: QueryRewrite(policy, retriever, generator, k=k, bm25=bm25),
        "ircot": lambda: IRCoT(policy, retriever, generator, k=k, max_steps=max_turns),
        "search-r1": lambda: SearchR1Style(policy, retriever, generator, k=k, max_turns=max_turns),
        "search-r1-self": lambda: SearchR1Style(policy, retriever, generator, k=k, max_turns=max_turns,
                                                self_answer=True),
    }
    return [make[n]() for n in dict.fromkeys(names)]


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


def eval_command(
    methods: Annotated[str, typer.Option(help="Comma-separated: no-retrieval, naive-rag, s3, query-rewrite, ircot, "
                                              "search-r1, search-r1-self.")] = "naive-rag,s3",
    dataset: Annotated[list[str] | None, typer.Option(
        help="QA JSONL (FlashRAG/Search-R1 or {question, answers}), or `demo`; repeat for several.")] = None,
    index: IndexOpt = None,
    url: UrlOpt = None,
    policy_url: PolicyUrl = None,
    policy_model: PolicyModel = None,
    policy_gguf: PolicyGguf = None,
    generator_url: GeneratorUrl = None,
    generator_model: GeneratorModel = None,
    api_key: ApiKey = None,
    judge: Annotated[bool, typer.Option(help="GenAcc asks the generator as yes/no judge when span match fails.")]
    = True,
    config: ConfigName = "8-3-3",
    k: Annotated[int, typer.Option("-k", min=1, help="Documents per search of the baselines (paper: 3).")] = 3,
    max_turns: Annotated[int, typer.Option(min=1, help="Searches of IRCoT / Search-R1 (paper: 4).")] = 4,
    turn_tokens: Annotated[int, typer.Option(min=1, help="Token budget of one s3 searcher turn (s3: 500).")] = 500,
    out: Annotated[Path, typer.Option(help="Folder for results.jsonl and the report.")] = Path("runs/eval"),
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight at once.")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions of each dataset.")] = None,
) -> None:
    """Evaluate methods on QA datasets with the same generator; resumes, prints the table, writes the report."""
    from s3_agents.evaluation import evaluate, write_report
    from s3_agents.generator import Generator

    names = [n.strip() for n in methods.split(",") if n.strip()]
    datasets = _datasets(dataset or ["demo"])
    cfg = replace(_config(config), max_new_tokens=turn_tokens)
    policy = _llm(policy_url, policy_model, policy_gguf, api_key, "policy")
    gen_client = _generator_llm(generator_url, generator_model, api_key, policy)
    retriever = _retriever(index, url)
    bm25 = type(retriever).__name__ == "BM25Retriever"
    chosen = build_methods(names, policy=policy, retriever=retriever, generator=Generator(gen_client), config=cfg,
                           k=k, max_turns=max_turns, bm25=bm25)
    rows = asyncio.run(evaluate(chosen, datasets, out / "results.jsonl", judge=gen_client if judge else None,
                                concurrency=concurrency, limit=limit))
    notes = [f"Searcher / reasoner: {policy.model}; generator and judge: {gen_client.model}"
             f"{'' if judge else ' (judge off: span match only)'}; s3 config {cfg.name}, k={k}, "
             f"max turns {max_turns}."]
    report = write_report(rows, out, notes=notes)
    typer.echo(report["table"])
    typer.echo(f"\n{len(rows)} answers in {out / 'results.jsonl'}; report {out / 'report.md'} with plots")
