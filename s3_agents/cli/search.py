"""``s3 search``, ``s3 demo`` and ``s3 precompute``: run the searcher from the command line."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from s3_agents.cli.options import (
    ApiKey,
    ConfigName,
    Engine,
    GeneratorModel,
    GeneratorUrl,
    LlmTimeout,
    Searcher,
    check_engine,
    endpoint_or,
    info,
    open_llm,
    open_retriever,
    quiet_loading,
    search_config,
    trained_name,
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

__all__ = ["search", "demo", "precompute", "print_trace"]

console = Console(highlight=False)


def _docs_table(passages: list[Any], selected: list[int] | None = None) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    for i, p in enumerate(passages, 1):
        mark = "[bold green]*[/]" if selected and i in selected else " "
        score = "" if p.score is None else f"{p.score:.2f}"
        table.add_row(f"{mark}{i}", score, f"[bold]{p.title}[/]: {p.text[:150]}")
    return table


def _clip(text: str, max_lines: int = 14) -> str:
    lines = text.strip().splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    return "\n".join(lines[:max_lines]) + f"\n[dim]... ({len(lines) - max_lines} more lines)[/]"


def print_trace(steps: list[tuple[str, dict[str, Any]]], final: dict[str, Any]) -> None:
    """Print an episode turn by turn, from the graph's ``updates`` stream."""
    generation = 0
    for node, update in steps:
        if node == "initial_retrieval":
            console.print(Panel(_docs_table(update["blocks"][0]["passages"]),
                                title=f"initial retrieval: {update['question']}", title_align="left"))
        elif node == "policy":
            generation += 1
            written = update["outputs"][-1] if update.get("outputs") else "[dim](the context window is full)[/]"
            console.print(Panel(_clip(written) or "[dim](empty)[/]",
                                title=f"searcher, generation {generation}", title_align="left",
                                border_style="cyan"))
        elif node == "retrieve":
            block = update["blocks"][-1]
            console.print(Panel(_docs_table(block["passages"]), title=f"search {block['turn']}: {block['query']}",
                                title_align="left", border_style="yellow"))
        elif node == "feedback":
            console.print(f"[red]invalid action[/] ({update['problems'][-1]}); feedback sent")
    console.print(Panel(_docs_table(final["context"]),
                        title=f"context for the generator ({len(final['context'])} passages, "
                              f"stop: {final['stop_reason']}, searches: {len(final['queries'])})",
                        title_align="left", border_style="green"))


async def _run(searcher: Any, question: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    steps: list[tuple[str, dict[str, Any]]] = []
    final: dict[str, Any] = {}
    async for mode, chunk in searcher.astream(question, stream_mode=["updates", "values"]):
        if mode == "values":
            final = chunk
        else:
            steps.extend((node, update or {}) for node, update in chunk.items())
    return steps, final


def _state_json(state: dict[str, Any], answer: str | None) -> str:
    out = {k: v for k, v in state.items() if k not in ("messages", "pending")}
    out["context"] = [{"id": p.id, "title": p.title, "text": p.text, "score": p.score} for p in state["context"]]
    out["blocks"] = [{**b, "passages": [p.id for p in b["passages"]]} for b in state["blocks"]]
    if answer is not None:
        out["answer"] = answer
    return json.dumps(out, indent=2)


@retriever_options()
@policy_options
@loop_options()
def search(
    question: Annotated[str, typer.Argument(help="The question.")],
    generator_url: GeneratorUrl = None,
    generator_model: GeneratorModel = None,
    api_key: ApiKey = None,
    timeout: LlmTimeout = 300.0,
    config: ConfigName = "8-3-3",
    answer: Annotated[bool, typer.Option(help="Also answer with the generator.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final state as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write the episode as a self-contained HTML page (the trajectory browser).")] = None,
    trained: Annotated[bool, typer.Option(
        help="A shipped trained searcher (SmolLM2 + LoRA, its own loop settings, on --policy-engine; --searcher "
             "picks which) over its shipped corpus unless --index / --url is given; SmolLM2 answers unless "
             "--generator-url.")
    ] = False,
    searcher_name: Searcher = None,
    *,
    where: RetrieverOptions,
    policy: PolicyOptions,
    loop: SearchConfig,
) -> None:
    """Run the searcher on one question and print each turn, the selected context and the answer."""
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient
    from s3_agents.searcher import S3Searcher

    pieces = open_search(where, policy, loop, config, api_key=api_key, timeout=timeout, trained=trained,
                         searcher=searcher_name)
    gen_client = endpoint_or(generator_url, generator_model, api_key, "generator", pieces.client, timeout)
    if gen_client is None:          # a shipped searcher: SmolLM2 answers
        gen_client = LlamaCppClient()
    searcher = S3Searcher(pieces.policy, pieces.retriever, pieces.config)
    steps, final = asyncio.run(_run(searcher, question))
    reply = Generator(gen_client).answer(final["question"], final["context"]) if answer else None
    if html is not None:
        from s3_agents.evaluation.html import episode_record, write_html_report

        write_html_report(html, [episode_record(final, reply)], title=f"s3 search: {final['question']}")
        info(f"wrote {html}")
    if as_json:
        typer.echo(_state_json(final, reply))
        return
    print_trace(steps, final)
    if reply is not None:
        console.print(Panel(reply or "[dim](empty)[/]", title=f"answer ({gen_client.model})", title_align="left",
                            border_style="magenta"))


def demo(
    question: Annotated[str | None, typer.Option(help="Your own question about the demo world.")] = None,
    question_id: Annotated[str | None, typer.Option(
        help="A question id (demo: q1...q157; --trained: a question of the searcher's shipped corpus); default: "
             "random.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for picking the question.")] = 0,
    config: ConfigName = "8-3-3",
    max_new_tokens: Annotated[int, typer.Option(min=16, help="Token budget of each searcher turn.")] = 200,
    trained: Annotated[bool, typer.Option(
        help="A shipped trained searcher (SmolLM2 + LoRA adapter, constrained; --searcher picks which) on the "
             "questions of its shipped corpus (real: 30 HotpotQA questions over 293 Wikipedia paragraphs; world: "
             "the benchmark world's test split), instead of the untrained SmolLM2 on the demo world.")] = False,
    searcher_name: Searcher = None,
    engine: Engine = "llama.cpp",
) -> None:
    """Offline end-to-end run: MiniLM retrieval, a SmolLM2 searcher and generator, no network."""
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient
    from s3_agents.metrics import gen_acc
    from s3_agents.searcher import S3Searcher

    if question and question_id:
        raise typer.BadParameter("give --question or --question-id, not both")
    name = trained_name(searcher_name)
    trained = trained or name is not None
    world = None
    if trained:
        from s3_agents.trained import trained_world

        world = trained_world(name)
    question, gold = _demo_question(question, question_id, seed, world)
    with quiet_loading():        # the episode is the demo's output, not the libraries' loading bars
        llm = LlamaCppClient()
        if trained:
            from s3_agents.trained import DEFAULT_SEARCHER, trained_config, trained_searcher, trained_searcher_info
            from s3_agents.worlds import default_world_retriever

            info = trained_searcher_info(name)
            corpus = ("real HotpotQA questions over 293 Wikipedia paragraphs (CC BY-SA)" if world == "realqa"
                      else "benchmark world (2,000 passages)")
            console.print(f"[dim]demo: {corpus}, MiniLM + FAISS, the shipped {name or DEFAULT_SEARCHER} searcher "
                          f"(SmolLM2-135M-Instruct + LoRA, {info['stage']}, constrained, {engine}) and SmolLM2 as "
                          "generator (llama.cpp); no network[/]")
            check_engine(engine)
            retriever = default_world_retriever(name=world)  # type: ignore[arg-type]
            policy, cfg = trained_searcher(name, engine=engine), trained_config(name)  # type: ignore[arg-type]
        else:
            console.print("[dim]demo: fictional-archipelago corpus (270 passages), MiniLM + FAISS retrieval, "
                          "SmolLM2-135M-Instruct (llama.cpp, in-process) as searcher and generator; no network[/]")
            retriever, policy = open_retriever(None, None), llm
            cfg = replace(search_config(config), max_new_tokens=max_new_tokens)
    steps, final = asyncio.run(_run(S3Searcher(policy, retriever, cfg), question))
    print_trace(steps, final)
    generator = Generator(llm)
    reply = generator.answer(final["question"], final["context"])
    rag = generator.answer(final["question"], final["blocks"][0]["passages"])
    lines = [f"[bold]answer with the searcher's context:[/] {reply}", f"[bold]answer with naive RAG (top-3):[/] {rag}"]
    if gold:
        lines += [f"[bold]gold:[/] {', '.join(gold)}",
                  f"GenAcc (span match): searcher {gen_acc(reply, gold):.0f}, naive RAG {gen_acc(rag, gold):.0f}"]
    console.print(Panel("\n".join(lines), title="generator (SmolLM2)", title_align="left", border_style="magenta"))
    if not trained:
        console.print("[dim]SmolLM2-135M has not been trained as a searcher, so it rarely follows the tag protocol: "
                      "invalid turns get the protocol reminder and count against the turn budget. `s3 demo "
                      "--trained` runs the shipped trained searcher; `s3 search --policy-url ...` any other model.[/]")
    llm.close()


def _demo_question(question: str | None, question_id: str | None, seed: int, world: str | None
                   ) -> tuple[str, list[str]]:
    """The question to run and its gold answers (none for a question of one's own): from a shipped ``world``'s
    questions (the real corpus ships dev questions, the benchmark world its test split), else the demo's."""
    trained = world is not None
    if trained:
        from s3_agents.worlds import default_world_dir, load_world

        items = load_world(default_world_dir(world)).split("dev" if world == "realqa" else "test")  # type: ignore[arg-type]
    else:
        from s3_agents.qa import load_demo_qa

        items = [{"id": q.id, "question": q.question, "answers": list(q.answers), "hops": q.metadata.get("hops")}
                 for q in load_demo_qa()]
        items = [q for q in items if q["hops"] == 2] if not question_id else items
    if question:
        return question, []
    if question_id:
        match = [q for q in items if q["id"] == question_id]
        if not match:
            kind = f"question of the shipped {world} corpus" if trained else "demo question"
            raise typer.BadParameter(f"no {kind} {question_id!r}; ids run from {items[0]['id']} on")
        return match[0]["question"], list(match[0]["answers"])
    pick = random.Random(seed).choice(items)
    return pick["question"], list(pick["answers"])


@retriever_options()
def precompute(
    questions: Annotated[Path, typer.Argument(
        help='QA JSONL: {"question", "answers"} or FlashRAG / Search-R1 lines (demo: `s3 corpus demo DIR`).')],
    cache: Annotated[Path, typer.Option(help="SQLite file of the cache.")] = Path("rag_cache.sqlite"),
    generator_url: GeneratorUrl = None,
    generator_model: GeneratorModel = None,
    generator_gguf: Annotated[Path | None, typer.Option(
        help="GGUF file of the generator, run in-process by llama.cpp (without --generator-url); default: "
             "SmolLM2-135M-Instruct from its wheel.")] = None,
    api_key: ApiKey = None,
    timeout: LlmTimeout = 300.0,
    k: Annotated[int, typer.Option("-k", min=1, help="Naive-RAG documents (s3: 3).")] = 3,
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight at once.")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    *,
    where: RetrieverOptions,
) -> None:
    """Precompute the naive-RAG baseline (answer, GenAcc) per question; resumes, computes only what is missing."""
    from s3_agents.generator import Generator
    from s3_agents.qa import load_qa
    from s3_agents.rag_cache import RagCache

    items = load_qa(questions)
    items = items[:limit] if limit else items
    client = open_llm(generator_url, generator_model, generator_gguf, api_key, "generator", timeout=timeout)
    rag = RagCache(cache, retriever_id=RagCache.retriever_key(where.url or where.index), generator_id=client.model,
                   k=k)
    retriever = where.open()
    counts = rag.precompute(items, retriever, Generator(client), concurrency=concurrency)
    typer.echo(f"{counts['computed']} computed, {counts['cached']} already cached, {len(rag)} rows for this "
               f"retriever/generator/k in {cache}")
