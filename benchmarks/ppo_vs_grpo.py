"""PPO against GRPO at the same wall-clock budget: which one learns more per hour on the benchmark world.

Both train ``s3 train local`` with rollouts on llama.cpp from the same adapter (``--init-adapter``), with the same
seed, data order and loop settings as ``benchmarks/train_throughput.py`` (5-3-3, 100 tokens a turn, 3-document
budget, 8 episodes a step; GRPO: 4 samples of 2 questions a step, no value head), each for ``--minutes`` of wall
clock (``LocalRun.train(max_seconds=)``). The two train **at the same time**, in two processes sharing the machine
and the generator, so that whatever else loads this noisy machine loads both alike. Then the start adapter and
both trained adapters search the same questions of the world's **dev** split (``World.sample("dev", n, seed=0)``,
never the test split), on llama.cpp, greedy and constrained, SmolLM2 answering: GenAcc (span match) and
answer-in-context with 95% bootstrap intervals, and paired differences on the same questions.

Command: ``python benchmarks/ppo_vs_grpo.py --init-adapter runs/warmstart-1f505b4 --minutes 12`` (about 25 minutes
on 2 cores; ``--quick`` checks it runs). A rerun keeps what ``--out`` holds; a training run interrupted before its
budget ran out starts again from the adapter, so each run gets one uninterrupted budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

from train_throughput import BUDGET, SEARCH, TURN_TOKENS, setup_world  # noqa: E402

ALGORITHMS = ("ppo", "grpo")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "ppo-vs-grpo")
    parser.add_argument("--init-adapter", type=Path, default=None,
                        help="LoRA adapter both runs start from (default: the shipped searcher).")
    parser.add_argument("--minutes", type=float, default=10.0, help="Wall-clock budget of each training run.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4, help="GRPO's samples per question.")
    parser.add_argument("--eval-questions", type=int, default=40, help="Questions of the dev split.")
    parser.add_argument("--train-one", choices=ALGORITHMS, default=None, help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--generator-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="Tiny sizes, to check the script runs; writes no docs.")
    parser.add_argument("--no-write", action="store_true", help="Do not write docs/benchmarks.md.")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.batch_size, args.group_size, args.eval_questions, args.no_write = 0.0, 2, 2, 2, True
    return args


def _train(args: argparse.Namespace, algorithm: str, index: Path, parquet: Path, generator_url: str,
           init_adapter: Path) -> dict[str, Any]:
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.local import LocalRun, LocalSettings, _read_csv, read_rows

    out = args.out / "runs" / algorithm
    shutil.rmtree(out, ignore_errors=True)          # one uninterrupted budget per run
    settings = LocalSettings(steps=100_000, batch_size=args.batch_size, search=SEARCH, max_turn_tokens=TURN_TOKENS,
                             max_context_docs=BUDGET, save_every=100_000, engine="llama.cpp", contexts=2,
                             reward_concurrency=1, algorithm=algorithm, group_size=args.group_size, seed=0)
    run = LocalRun(out, read_rows(parquet), load_retriever(index),
                   {"generator_url": generator_url, "generator_model": "smollm2",   # a cache each: no shared writes
                    "rag_cache": str(args.out / f"rag-{algorithm}.sqlite"), "retriever": str(index)},
                   settings, init_adapter=init_adapter)
    run.train(progress=False, max_seconds=60 * args.minutes)
    rows = _read_csv(out / "metrics.csv")
    per_question = args.group_size if algorithm == "grpo" else 1
    return {"steps": len(rows), "episodes": len(rows) * args.batch_size,
            "questions": len(rows) * args.batch_size // per_question,
            "seconds": sum(float(r["seconds"]) for r in rows),
            "reward_first": float(rows[0]["reward"]), "reward_mean": sum(float(r["reward"]) for r in rows) / len(rows),
            "adapter": str(out / "adapter")}


def _evaluate(args: argparse.Namespace, world: Any, index: Path, adapters: dict[str, Path], generator_url: str
              ) -> list[Any]:
    from s3_agents.config import SearchConfig
    from s3_agents.evaluation import NaiveRAG, S3Method, evaluate
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient, OpenAICompatClient, smollm2_gguf_path
    from s3_agents.qa import QAExample
    from s3_agents.retrievers import load_retriever

    retriever = load_retriever(index)
    generator = Generator(OpenAICompatClient(generator_url, "smollm2"))
    config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, constrained=True, max_context_docs=BUDGET)
    policies = {name: LlamaCppClient(smollm2_gguf_path(), adapter=path) for name, path in adapters.items()}
    dev = {"world-dev": [QAExample(q["question"], tuple(q["answers"]), q["id"])
                         for q in world.sample("dev", args.eval_questions)]}
    methods = [NaiveRAG(retriever, generator, k=BUDGET)] + [
        S3Method(policy, retriever, generator, config, name=name) for name, policy in policies.items()]
    try:
        return asyncio.run(evaluate(methods, dev, args.out / "eval" / "results.jsonl", judge=None, concurrency=1))
    finally:
        for policy in policies.values():
            policy.close()


def _paired(rows: list[Any], a: str, b: str) -> dict[str, Any]:
    from s3_agents.evaluation.report import PAIRED_FIELDS, paired_difference

    return paired_difference(rows, a, b, fields=PAIRED_FIELDS[:2])


def _report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["## PPO against GRPO at the same wall-clock budget (`benchmarks/ppo_vs_grpo.py`)", "",
             f"Command: `python benchmarks/ppo_vs_grpo.py --init-adapter runs/warmstart-1f505b4 --minutes "
             f"{args.minutes:g}` (the warm-start adapter of the recorded run, from the repository's history: see "
             "training.md)", "",
             f"`s3 train local` on llama.cpp rollouts from the same adapter, seed and data order, {SEARCH}, "
             f"{TURN_TOKENS} tokens a turn, {BUDGET}-document budget, {args.batch_size} episodes a step (GRPO: "
             f"{args.group_size} samples of each of {args.batch_size // args.group_size} questions), each for "
             f"{args.minutes:g} minutes of wall clock, both at the same time (two processes on the 2 cores, each "
             "with its 2 llama.cpp contexts); SmolLM2 on one `python -m llama_cpp.server` as their generator.", "",
             "| algorithm | steps | episodes | questions | training s | reward, step 1 | reward, mean of steps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ALGORITHMS:
        r = results["train"][name]
        lines.append(f"| {name} | {r['steps']} | {r['episodes']} | {r['questions']} | {r['seconds']:.0f} "
                     f"| {r['reward_first']:+.3f} | {r['reward_mean']:+.3f} |")
    ev = results["eval"]
    lines += ["", f"World **dev** split, {ev['n']} questions (`World.sample('dev', {args.eval_questions}, seed=0)`), "
                  "greedy, constrained, on llama.cpp; GenAcc by span match; 95% bootstrap intervals.", "",
              "| searcher | GenAcc | answer in context | context docs | searches |", "|---|---:|---:|---:|---:|"]
    for name in ("naive-rag", "start", *ALGORITHMS):
        m = ev["methods"][name]
        lines.append(f"| {name} | {m['genacc']:.0f} ({m['genacc_ci'][0]:.0f}-{m['genacc_ci'][1]:.0f}) "
                     f"| {m['context_recall']:.0f} ({m['context_recall_ci'][0]:.0f}-{m['context_recall_ci'][1]:.0f}) "
                     f"| {m['context_docs']:.2f} | {m['searches']:.2f} |")
    lines += ["", "| paired difference (points) | GenAcc | answer in context |", "|---|---:|---:|"]
    for name, d in ev["paired"].items():
        lines.append(f"| {name} | {d['genacc']:+.1f} ({d['genacc_ci'][0]:+.0f} to {d['genacc_ci'][1]:+.0f}) "
                     f"| {d['answer_in_context']:+.1f} ({d['answer_in_context_ci'][0]:+.0f} to "
                     f"{d['answer_in_context_ci'][1]:+.0f}) |")
    return "\n".join(lines)


def main() -> int:
    from _report import write_section

    from s3_agents.evaluation.report import summarize
    from s3_agents.llm import LocalLlamaServer
    from s3_agents.trained import trained_searcher_dir

    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / ("results-quick.json" if args.quick else "results.json")
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    init = args.init_adapter or trained_searcher_dir("world")
    world, index, parquet = setup_world(args)
    if args.train_one:                               # the child: train one algorithm, write its figures
        result = _train(args, args.train_one, index, parquet, args.generator_url, init)
        (args.out / f"train-{args.train_one}.json").write_text(json.dumps(result))
        return 0
    with LocalLlamaServer(n_ctx=8192) as server:
        if "train" not in results:
            print(f"== ppo and grpo side by side: {args.minutes:g} minutes each", flush=True)
            common = [sys.executable, __file__, "--out", str(args.out), "--init-adapter", str(init), "--minutes",
                      str(args.minutes), "--batch-size", str(args.batch_size), "--group-size", str(args.group_size),
                      "--generator-url", server.url] + (["--quick"] if args.quick else [])
            children = {name: subprocess.Popen([*common, "--train-one", name]) for name in ALGORITHMS}
            failed = [name for name, child in children.items() if child.wait() != 0]
            if failed:
                raise SystemExit(f"training {failed} failed (see the output above)")
            results["train"] = {name: json.loads((args.out / f"train-{name}.json").read_text())
                                for name in ALGORITHMS}
            saved.write_text(json.dumps(results, indent=1))
        adapters = {"start": init} | {name: Path(results["train"][name]["adapter"]) for name in ALGORITHMS}
        rows = _evaluate(args, world, index, adapters, server.url)
    per = summarize(rows)
    results["eval"] = {"n": int(per["start"]["world-dev"]["n"]),
                       "methods": {m: {k: v for k, v in per[m]["world-dev"].items()} for m in per},
                       "paired": {f"{a} - {b}": _paired(rows, a, b)
                                  for a, b in (("grpo", "ppo"), ("ppo", "start"), ("grpo", "start"))}}
    saved.write_text(json.dumps(results, indent=1, default=list))
    body = _report(results, args)
    print(body)
    if not args.no_write:
        write_section("ppo_vs_grpo", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
