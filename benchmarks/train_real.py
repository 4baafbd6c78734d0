"""The real-questions run: a searcher warm-started and trained on real multi-hop QA, against naive RAG on unseen
real questions at an equal 3-document budget.

The data folder comes from one command (see docs/training.md, "Real questions")::

    s3 data hotpotqa ../shared/data/realqa/hotpotqa/dev_1025.jsonl runs/realqa \\
        --train-extra hotpotqa=../shared/data/realqa/hotpotqa/train_100.json \\
        --train-extra musique=../shared/data/realqa/musique/train_100.json

Stages (each resumes; run the script again after an interruption):

1. ``warmstart``: oracle-chain trajectories of the real train split (``ChainTeacher`` asks the supporting titles /
   MuSiQue's sub-questions and keeps the supporting passages), masked SFT of a LoRA adapter;
2. ``rl``: ``s3 train local`` from the warm start on the real train split (``--variant``, ``--algorithm``,
   ``--fill-context``, ``--rl-minutes``), in ``<out>/rl-<variant>-<algorithm>[-fill]``;
3. ``dev``: searchers (``--policies``) and naive RAG on the dev split, with and without the budget fill: the
   evidence for the defaults (budget fill, reward). Never the test split;
4. ``test``: naive RAG (dense, BM25), the untrained, world-trained, warm-start and trained searchers on the test
   split; writes ``docs/train-real/summary.json`` and the ``train-real`` section of docs/benchmarks.md;
5. ``world`` (on its own): searchers (``--world-policies``) on the benchmark world's test split, what a searcher
   trained on real questions kept of the world; writes ``docs/train-real/world-test.json``.

Every searcher is SmolLM2-135M-Instruct (+ its LoRA adapter) on llama.cpp, constrained, 5-3-3, greedy; SmolLM2 on
llama.cpp answers; GenAcc by span match; 95% bootstrap intervals and paired differences.

Command: ``python benchmarks/train_real.py --stage all`` (hours on 2 cores; ``--quick`` checks the script runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

from train_local import (  # noqa: E402
    BUDGET,
    SEARCH,
    TURN_TOKENS,
    _Memo,
    index_stage,
    ppo_stage,
    train_examples,
    warmstart_dir,
    warmstart_stage,
)

DOCS = REPO / "docs" / "train-real"
KEPT = DOCS / "rows"     # the evaluations' rows, committed: what a fresh machine resumes from
ORDER = ("naive-rag", "naive-rag-bm25", "untrained", "world", "warmstart", "trained")
TEST_POLICIES = ("untrained", "world", "warmstart", "trained")
# Budget rules: what the searcher keeps; topped up from the initial documents; topped up, with searches that show
# only documents not shown before (SearchConfig.new_results); topped up, the first prompt showing naive top-5
# instead of top-3 (SearchConfig.initial_k), so the searcher can keep the 4th or 5th within the 3-document budget;
# that first prompt, not topped up; topped up, every query one of the names of the documents shown so far
# (SearchConfig.query_spans).
RULES = ("plain", "fill", "fill-new", "fill-init5", "init5", "fill-spans")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "realqa", help="Folder of `s3 data hotpotqa`.")
    parser.add_argument("--out", type=Path, default=None, help="Run folder (default runs/train-real; "
                        "runs/train-real-quick with --quick, so a check never mixes into the real run's rows).")
    parser.add_argument("--stage", choices=["warmstart", "rl", "dev", "test", "world", "all"], default="all",
                        help="all: warmstart, rl, dev, test; world (on its own): searchers on the benchmark world's "
                             "test split, to see what a real-trained searcher kept of the world.")
    parser.add_argument("--warmstart-questions", type=int, default=400)
    parser.add_argument("--warmstart-steps", type=int, default=60, help="Optimiser steps (4 trajectories each).")
    parser.add_argument("--warmstart-splits", default="train",
                        help="Splits whose questions (--warmstart-questions of each) the warm start learns from: "
                             "train,dev for a final searcher, once dev has chosen its recipe; never test.")
    parser.add_argument("--warmstart-dir", type=Path, default=None,
                        help="The warm start's folder (default <out>/warmstart): a second warm start (other "
                             "--warmstart-questions or --warmstart-epochs) goes in its own.")
    parser.add_argument("--warmstart-epochs", type=float, default=1.0,
                        help="Passes over the trajectories (--warmstart-steps, if not 0, stops it sooner).")
    parser.add_argument("--warmstart-init", type=Path, default=None,
                        help="Start the warm start from this adapter (a second pass, on more questions, over an "
                             "earlier one) instead of a fresh LoRA.")
    parser.add_argument("--observable-chain", action="store_true",
                        help="The oracle teacher asks only what it has read (ChainTeacher(observable=True)): never "
                             "a hop's entity before a document has named it. Use its own --warmstart-dir.")
    parser.add_argument("--span-teacher", action="store_true",
                        help="The oracle teacher asks, of the names it has read (the queries --query-spans allows), "
                             "the one whose retrieval brings a missing supporting passage "
                             "(ChainTeacher(span_retriever=)). Use its own --warmstart-dir.")
    parser.add_argument("--searching-only", action="store_true",
                        help="Warm start only on the trajectories that search (not those whose teacher stops at "
                             "once, which teach a searcher to stop).")
    parser.add_argument("--initial-k", type=int, default=3,
                        help="Warm start and RL: naive-RAG documents in the first prompt (SearchConfig.initial_k; 5 "
                             "pairs with the rules fill-init5 and init5). Give the warm start its own --warmstart-dir.")
    parser.add_argument("--query-spans", action="store_true",
                        help="RL: every query is a capitalised span of the documents shown so far "
                             "(LocalSettings.query_spans); evaluate it with the dev rule fill-spans.")
    parser.add_argument("--actor-lr", type=float, default=2e-5, help="RL: the adapter's learning rate.")
    parser.add_argument("--rl-dir", type=Path, default=None,
                        help="The RL run's folder (default <out>/rl-<the reward and sampling flags>): a run from "
                             "another --warmstart-adapter goes in its own, or it would resume the earlier one.")
    parser.add_argument("--warmstart-adapter", type=Path, default=None, help="Skip the warm start: use this adapter.")
    parser.add_argument("--variant", default="gbr", help="RL reward: gbr (the paper's), context or support.")
    parser.add_argument("--algorithm", default="ppo", choices=["ppo", "grpo"])
    parser.add_argument("--fill-context", action="store_true",
                        help="Fill the unused budget from the initial documents (in RL and the test stage).")
    parser.add_argument("--headroom-only", action="store_true",
                        help="RL only on the train questions whose naive dense top-3 lacks a supporting passage "
                             "(s3 trains only where naive RAG fails; this is that filter without a generator).")
    parser.add_argument("--temperature", type=float, default=0.6,
                        help="Rollout sampling temperature (s3: 0.6); a warm start that samples almost "
                             "deterministically gives GRPO groups that all score the same.")
    parser.add_argument("--drop-uniform-groups", action="store_true",
                        help="GRPO: no update from groups whose samples all scored the same.")
    parser.add_argument("--ppo-steps", type=int, default=1000, help="RL steps at most (--rl-minutes bounds a run).")
    parser.add_argument("--rl-minutes", type=float, default=60.0, help="Wall-clock budget of one `rl` invocation.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--policies", default="untrained,world,warmstart",
                        help="Searchers of the dev stage: untrained, world, warmstart, trained (the flags' RL run) "
                             "or NAME=ADAPTER_DIR.")
    parser.add_argument("--trained-adapter", type=Path, default=None,
                        help="The test stage's trained searcher (default: the flags' RL run).")
    parser.add_argument("--dev-limit", type=int, default=120, help="Dev questions (a seeded sample).")
    parser.add_argument("--dev-rules", default="plain,fill",
                        help="Budget rules of the dev stage: plain (what the searcher keeps), fill (topped up from the "
                             "initial documents), fill-new (topped up; searches show only unseen documents), "
                             "fill-init5 (topped up; the first prompt shows naive top-5), init5 (that prompt, not "
                             "topped up).")
    parser.add_argument("--test-rule", default=None, choices=RULES,
                        help="Budget rule of the test stage (default fill with --fill-context, else plain).")
    parser.add_argument("--test-limit", type=int, default=243, help="Test questions (a seeded sample).")
    parser.add_argument("--test-policies", default=",".join(TEST_POLICIES),
                        help="Searchers of this test-stage invocation (rows are kept, so the stage can run in parts: "
                             "the baselines first, the trained searcher once dev has chosen it); the summary and "
                             "docs are written when all of untrained, world, warmstart and trained have rows. A "
                             "NAME=ADAPTER_DIR here joins the record beside them.")
    parser.add_argument("--world-policies", default="world,trained",
                        help="Searchers of the world stage (names as --policies).")
    parser.add_argument("--world-rules", default="fill",
                        help="Budget rules of the world stage (as --dev-rules): fill-spans for a searcher served "
                             "under the span grammar, as the shipped real one is. A later invocation's rules are "
                             "added to docs/train-real/world-test.json, beside the earlier ones.")
    parser.add_argument("--world-limit", type=int, default=100,
                        help="World test questions (the world benchmark's sample: benchmarks/train_local.py).")
    parser.add_argument("--model", default=None, help="Base model folder (default: SmolLM2 from its wheel).")
    parser.add_argument("--engine", default="llama.cpp", choices=["auto", "llama.cpp", "transformers"])
    parser.add_argument("--quick", action="store_true", help="Tiny sizes, to check the script runs; writes no docs.")
    parser.add_argument("--no-write", action="store_true", help="Do not write docs/.")
    args = parser.parse_args()
    args.out = args.out or REPO / "runs" / ("train-real-quick" if args.quick else "train-real")
    args.warmstart_splits = tuple(_names(args.warmstart_splits))
    if not args.warmstart_splits or set(args.warmstart_splits) - {"train", "dev"}:
        parser.error(f"--warmstart-splits: train and/or dev, got {','.join(args.warmstart_splits)!r}")
    if args.quick:
        args.warmstart_questions, args.warmstart_steps, args.ppo_steps, args.batch_size = 2, 1, 1, 2
        args.dev_limit, args.test_limit, args.world_limit, args.rl_minutes, args.no_write = 2, 2, 2, 0.0, True
    return args


def _rules(text: str, option: str) -> tuple[str, ...]:
    """The budget rules of a comma-separated ``option`` (some of :data:`RULES`, at least one)."""
    rules = tuple(_names(text))
    if not rules or set(rules) - set(RULES):
        raise SystemExit(f"{option}: some of {', '.join(RULES)}, got {text!r}")
    return rules


def _shown_path(path: Path | None) -> str | None:
    """``path`` as a record shows it: relative to the repository where it lies inside it."""
    if path is None:
        return None
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _names(text: str) -> list[str]:
    """The items of a comma-separated option, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def keep_rows(results: Path, kept: Path) -> int:
    """Copy the finished rows of ``results`` (a ``results.jsonl`` being written or done) to ``kept``, atomically,
    without the passages' text (``extra.passages``, which the corpus holds): the committed record of an evaluation,
    small enough for git. Returns the number of rows kept."""
    from s3_agents.locks import write_atomic

    rows = []
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:     # the line a running evaluation is writing
            continue
        row.get("extra", {}).pop("passages", None)
        rows.append(json.dumps(row, ensure_ascii=False))
    kept.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(kept, "".join(f"{row}\n" for row in rows).encode())
    return len(rows)


def _results(args: argparse.Namespace, folder: str) -> Path:
    """``<out>/<folder>/results.jsonl``, seeded from its kept copy (:func:`keep_rows`) when a fresh machine lacks
    it: a re-run then redoes only the questions no commit recorded."""
    path = args.out / folder / "results.jsonl"
    kept = KEPT / f"{folder.replace('/', '-')}.jsonl"
    if not args.quick and not path.exists() and kept.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(kept.read_bytes())
    return path


def _rl_dir(args: argparse.Namespace) -> Path:
    if args.rl_dir is not None:
        return args.rl_dir
    return args.out / (f"rl-{args.variant}-{args.algorithm}{'-fill' if args.fill_context else ''}"
                       f"{'-headroom' if args.headroom_only else ''}"
                       f"{f'-t{args.temperature:g}' if args.temperature != 0.6 else ''}"
                       f"{'-dropuniform' if args.drop_uniform_groups else ''}"
                       f"{f'-init{args.initial_k}' if args.initial_k != 3 else ''}"
                       f"{'-spans' if args.query_spans else ''}"
                       f"{f'-lr{args.actor_lr:g}' if args.actor_lr != 2e-5 else ''}")


def headroom_parquet(args: argparse.Namespace, world: Any, index: Path) -> Path:
    """The train split less the questions whose naive dense top-``BUDGET`` already holds every supporting passage
    (nothing for a searcher to add there), as verl parquet; written once."""
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.data import prepare_dataset

    path = args.out / "data" / "train-headroom.parquet"
    if path.is_file():
        return path
    train = train_examples(world)
    found = load_retriever(index).search([q.question for q in train], k=BUDGET)
    items = [q for q, passages in zip(train, found)
             if not set(q.metadata["supporting_ids"]) <= {p.id for p in passages}]
    path.parent.mkdir(parents=True, exist_ok=True)
    report = prepare_dataset(items, path, show_progress=False)
    print(f"headroom: {report.written} of {len(train)} train questions lack a supporting passage in naive top-{BUDGET}")
    return path


def _policies(args: argparse.Namespace, names: list[str]) -> dict[str, Path | None]:
    from s3_agents.trained import trained_searcher_dir

    known: dict[str, Path | None] = {"untrained": None, "world": trained_searcher_dir("world"),
                                     "warmstart": args.warmstart_adapter or warmstart_dir(args) / "adapter",
                                     "trained": args.trained_adapter or _rl_dir(args) / "adapter"}
    out: dict[str, Path | None] = {}
    for name in names:
        label, _, path = name.partition("=")
        if path:
            out[label] = Path(path)
        elif label in known:
            out[label] = known[label]
        else:
            raise SystemExit(f"--policies: unknown {label!r}; choose {', '.join(known)} or NAME=ADAPTER_DIR")
    for label, path in out.items():
        if path is not None and not (path / "adapter_config.json").is_file():
            raise SystemExit(f"no adapter for {label!r} in {path}: run its stage first")
    return out


def evaluate_split(args: argparse.Namespace, world: Any, split: str, limit: int, policies: dict[str, Path | None],
                   generator_url: str, rules: tuple[str, ...], *, index: Path | None = None,
                   dataset: str | None = None) -> dict[str, list[Any]]:
    """Naive RAG (dense, and BM25 where the data has its index) and each searcher on ``limit`` questions of
    ``split``, per budget rule (``plain``: what the searcher keeps; ``fill``: topped up from the initial documents),
    resumable, in ``<out>/eval-<split>/<rule>`` (``<out>/eval-<dataset>/<rule>`` for another world: ``index``
    its dense index, ``dataset`` its name), the rows kept in ``docs/train-real/rows`` (:func:`keep_rows`). The
    rules share the searchers' episodes (replies remembered), so a second rule costs only the generator's answers."""
    from s3_agents.config import SearchConfig
    from s3_agents.evaluation import NaiveRAG, S3Method, evaluate
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient, OpenAICompatClient, smollm2_gguf_path
    from s3_agents.qa import QAExample
    from s3_agents.retrievers import load_retriever

    dense = load_retriever(index or args.data / "index-dense")
    bm25 = None if index else load_retriever(args.data / "index-bm25")
    generator = Generator(OpenAICompatClient(generator_url, "smollm2"))
    # 8,192 tokens (SmolLM2's window): three 5-document blocks of Wikipedia paragraphs outgrow the default 4,096.
    clients = {name: LlamaCppClient(smollm2_gguf_path(), adapter=path, n_ctx=8192) for name, path in policies.items()}
    memos = {name: _Memo(client) for name, client in clients.items()}
    questions = [QAExample(q["question"], tuple(q["answers"]), q["id"],
                           metadata={"supporting_ids": q["supporting_ids"]}) for q in world.sample(split, limit)]
    out = {}
    try:
        for rule in rules:
            config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, constrained=True,
                                            max_context_docs=BUDGET, fill_context="fill" in rule.split("-"),
                                            new_results="new" in rule.split("-"),
                                            initial_k=5 if "init5" in rule.split("-") else 3,
                                            query_spans="spans" in rule.split("-"))
            methods = [NaiveRAG(dense, generator, k=BUDGET)]
            methods += [NaiveRAG(bm25, generator, k=BUDGET, name="naive-rag-bm25")] if bm25 else []
            methods += [S3Method(memo, dense, generator, config, name=name) for name, memo in memos.items()]
            folder = f"eval-{dataset or split}/{rule}"
            results = _results(args, folder)
            try:
                out[rule] = asyncio.run(evaluate(methods, {dataset or f"real-{split}": questions}, results,
                                                 judge=None, concurrency=1))
            finally:
                if not args.quick:
                    keep_rows(results, KEPT / f"{folder.replace('/', '-')}.jsonl")
    finally:
        for client in clients.values():
            client.close()
    return out


def generator_ceiling(args: argparse.Namespace, world: Any, split: str, limit: int, generator_url: str
                      ) -> dict[str, Any]:
    """GenAcc (span match) of the generator handed each question's supporting passages alone, on the questions of
    the split's evaluation sample: the most any searcher can reach with this generator. Cached in ``<out>``."""
    from s3_agents.evaluation.report import bootstrap_ci
    from s3_agents.generator import Generator
    from s3_agents.llm import OpenAICompatClient
    from s3_agents.metrics import gen_acc

    path = args.out / f"ceiling-{split}-{limit}.json"
    if path.is_file():
        return json.loads(path.read_text())
    generator = Generator(OpenAICompatClient(generator_url, "smollm2"))
    by_id = {p.id: p for p in world.passages}
    scores = [gen_acc(generator.answer(q["question"], [by_id[i] for i in q["supporting_ids"]]), q["answers"])
              for q in world.sample(split, limit)]
    out = {"genacc_gold_passages": round(100 * sum(scores) / len(scores), 1),
           "genacc_gold_passages_ci": list(bootstrap_ci(scores)), "n": len(scores)}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def summarize_rows(rows: list[Any], dataset: str) -> dict[str, Any]:
    """``methods`` (GenAcc, answer-in-context, support recall with intervals; docs, searches, world-template share of
    the queries) and ``paired`` (each searcher minus naive RAG, and trained minus each other method) of the rows of
    ``dataset`` (``real-dev``, ``real-test``, ``world-test``)."""
    from s3_agents.evaluation.report import paired_difference, summarize
    from s3_agents.worlds import uses_world_template

    per = {m: v[dataset] for m, v in summarize(rows).items()}
    queries: dict[str, list[str]] = {}
    for row in rows:
        queries.setdefault(row.method, []).extend(row.extra.get("queries") or [])

    def entry(m: str) -> dict[str, Any]:
        v = per[m]
        asked = queries.get(m, [])
        return {"genacc": round(v["genacc"], 2), "genacc_ci": list(v["genacc_ci"]),
                "answer_in_context": round(v["context_recall"], 2),
                "answer_in_context_ci": list(v["context_recall_ci"]),
                "support_recall": round(v.get("support_recall", 0.0), 2),
                "support_recall_ci": list(v.get("support_recall_ci", (0.0, 0.0))),
                "context_docs": round(v["context_docs"], 2), "searches": round(v["searches"], 2),
                "valid_action_rate": round(v["valid_action_rate"], 2) if "valid_action_rate" in v else None,
                "world_template_share": (round(100 * sum(map(uses_world_template, asked)) / len(asked), 1)
                                         if asked else None),
                "seconds": round(v["seconds"], 2), "n": int(v["n"])}

    rank = {m: ORDER.index(m) if m in ORDER else len(ORDER) for m in per}
    searchers = [m for m in per if m not in ("naive-rag", "naive-rag-bm25")]
    pairs = [(m, "naive-rag") for m in searchers]
    if "trained" in per:
        pairs += [("trained", m) for m in per if m not in ("trained", "naive-rag")]
    genacc = {(row.method, row.id): row.genacc for row in rows}

    def pair(a: str, b: str) -> dict[str, Any]:
        out = paired_difference(rows, a, b)
        if b == "naive-rag":      # how often Gain Beyond RAG (GenAcc minus naive RAG's) is not zero: its signal
            both = [i for (m, i) in genacc if m == a and (b, i) in genacc]
            out["gbr_nonzero_share"] = round(100 * sum(genacc[a, i] != genacc[b, i] for i in both)
                                             / max(1, len(both)), 1)
        return out

    return {"methods": {m: entry(m) for m in sorted(per, key=rank.get)},
            "paired": {f"{a} - {b}": pair(a, b) for a, b in pairs}}


def _table(summary: dict[str, Any]) -> list[str]:
    def cell(e: dict[str, Any], key: str) -> str:
        low, high = e[f"{key}_ci"]
        return f"{e[key]:.1f} [{low:.0f}, {high:.0f}]"

    lines = ["| method | GenAcc | answer in context | support recall | context docs | searches | world-template "
             "queries % |", "|---|---|---|---|---:|---:|---:|"]
    for m, e in summary["methods"].items():
        share = "—" if e["world_template_share"] is None else f"{e['world_template_share']:.1f}"
        lines.append(f"| {m} | {cell(e, 'genacc')} | {cell(e, 'answer_in_context')} | {cell(e, 'support_recall')} "
                     f"| {e['context_docs']:.2f} | {e['searches']:.2f} | {share} |")
    lines += ["", "| paired difference (points) | GenAcc | answer in context | support recall |", "|---|---|---|---|"]
    for name, d in summary["paired"].items():
        lines.append(f"| {name} | {d['genacc']:+.1f} [{d['genacc_ci'][0]:+.0f}, {d['genacc_ci'][1]:+.0f}] "
                     f"| {d['answer_in_context']:+.1f} [{d['answer_in_context_ci'][0]:+.0f}, "
                     f"{d['answer_in_context_ci'][1]:+.0f}] | {d['support_recall']:+.1f} "
                     f"[{d['support_recall_ci'][0]:+.0f}, {d['support_recall_ci'][1]:+.0f}] |")
    return lines


def world_stage(args: argparse.Namespace, generator_url: str) -> None:
    """Searchers on the benchmark world's test split (its dense index built in ``<out>/world-index``) under each of
    ``--world-rules``; adds those rules' summaries to ``docs/train-real/world-test.json``."""
    from s3_agents.locks import write_atomic
    from s3_agents.worlds import default_world_dir, load_world

    rules = _rules(args.world_rules, "--world-rules")
    toy = load_world(default_world_dir())
    by_rule = evaluate_split(args, toy, "test", args.world_limit, _policies(args, _names(args.world_policies)),
                             generator_url, rules, index=index_stage(args, toy), dataset="world-test")
    summary = {rule: summarize_rows(rows, "world-test") for rule, rows in by_rule.items()}
    for rule, entry in summary.items():
        print(f"## world test, {rule}", *_table(entry), sep="\n")
    if not args.no_write:
        path = DOCS / "world-test.json"
        DOCS.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(path.read_text()) if path.is_file() else {}
        write_atomic(path, (json.dumps(earlier | summary, indent=1) + "\n").encode())


def main() -> None:
    from s3_agents.worlds import load_world

    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    world = load_world(args.data)
    index = args.data / "index-dense"
    if args.stage in ("warmstart", "all") and not args.warmstart_adapter:
        warmstart_stage(args, world, index)
    if args.stage == "warmstart":
        return
    from s3_agents.llm.llama_server import LocalLlamaServer

    with LocalLlamaServer(n_ctx=8192) as server:
        if args.stage == "world":
            return world_stage(args, server.url)
        if args.stage in ("rl", "all"):
            adapter = args.warmstart_adapter or warmstart_dir(args) / "adapter"
            # Wikipedia paragraphs: 725 tokens for 5 documents on average, so no cap on an observation (the
            # world's 600 would cut most) and room for three searches; evaluation cuts nothing either.
            ppo_stage(args, world, index, adapter, server.url, run_dir=_rl_dir(args),
                      parquet=headroom_parquet(args, world, index) if args.headroom_only else None,
                      max_seconds=60 * args.rl_minutes, response_length=4096, max_obs_tokens=None,
                      temperature=args.temperature, drop_uniform_groups=args.drop_uniform_groups,
                      initial_k=args.initial_k, query_spans=args.query_spans, actor_lr=args.actor_lr)
        if args.stage in ("dev", "all"):
            names, rules = _names(args.policies), _rules(args.dev_rules, "--dev-rules")
            by_rule = evaluate_split(args, world, "dev", args.dev_limit, _policies(args, names), server.url, rules)
            ceiling = generator_ceiling(args, world, "dev", args.dev_limit, server.url)
            print(f"generator ceiling (the supporting passages alone), dev: {ceiling}")
            for rule, rows in by_rule.items():
                summary = summarize_rows(rows, "real-dev") | {"generator_ceiling": ceiling}
                (args.out / f"eval-dev/{rule}/summary.json").write_text(json.dumps(summary, indent=1) + "\n")
                print(f"## dev, {rule}", *_table(summary), sep="\n")
        if args.stage not in ("test", "all"):
            return
        rule = args.test_rule or ("fill" if args.fill_context else "plain")
        evaluate_split(args, world, "test", args.test_limit, _policies(args, _names(args.test_policies)), server.url,
                       (rule,))
        ceiling = generator_ceiling(args, world, "test", args.test_limit, server.url)
    from s3_agents.evaluation.runner import ResultsFile

    # every part's rows, not only this invocation's, and beside the four any NAME=ADAPTER_DIR this one names
    extra = [name for name in _names(args.test_policies) if name.partition("=")[0] not in TEST_POLICIES]
    wanted = ["naive-rag", "naive-rag-bm25", *TEST_POLICIES, *(name.partition("=")[0] for name in extra)]
    rows = [row for row in ResultsFile(_results(args, f"eval-test/{rule}")).finalize()
            if row.method in wanted]
    missing = [m for m in wanted if sum(row.method == m for row in rows) < args.test_limit]
    summary = summarize_rows(rows, "real-test") | {"generator_ceiling": ceiling}
    summary["settings"] = {"search": SEARCH, "turn_tokens": TURN_TOKENS, "budget": BUDGET, "constrained": True,
                           "rule": rule, "fill_context": "fill" in rule.split("-"),
                           **({} if args.trained_adapter else {"variant": args.variant, "algorithm": args.algorithm}),
                           "generator": "SmolLM2-135M-Instruct (llama.cpp)", "genacc": "span match",
                           "split": "test", "sample": "World.sample('test', --test-limit, seed=0)",
                           "data": json.loads((args.data / "world.json").read_text())["sources"]}
    body = "\n".join(_table(summary))
    print(body)
    if missing:
        print(f"test split: no complete rows yet for {', '.join(missing)}; docs not written (run the stage again "
              f"with --test-policies naming them)")
        return
    if args.no_write:
        return
    summary["settings"]["adapters"] = {name: _shown_path(path)      # the searchers this record is of
                                       for name, path in _policies(args, [*TEST_POLICIES, *extra]).items()}
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    from _report import write_section

    write_section("train-real", "\n".join([
        "## A searcher trained on real questions vs naive RAG (`benchmarks/train_real.py`)", "",
        f"{summary['methods']['naive-rag']['n']} questions of the real test split (HotpotQA dev questions kept out of "
        f"training and tuning), equal 3-document budget, budget rule `{rule}`; details in "
        "[training.md](training.md). Searchers (SmolLM2-135M-Instruct and a LoRA adapter): "
        + "; ".join(f"{name}: `{path}`" if path else f"{name}: no adapter"
                    for name, path in summary["settings"]["adapters"].items()) + ".", "", body, "",
        f"Command: `python {' '.join(sys.argv)}`"]))


if __name__ == "__main__":
    main()
