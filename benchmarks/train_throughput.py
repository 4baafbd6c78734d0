"""Training and evaluation throughput on a CPU: today's path and the fast path side by side, in one process.

Every configuration trains ``s3 train local`` (LocalRun) for ``--steps`` steps from the same adapter, on the
same seeded questions of the benchmark world's train split, with the recorded recipe's loop settings (5-3-3,
100 tokens a turn, 3-document budget, temperature 0.6, 8 episodes a step), the same generator model (SmolLM2)
and naive-RAG cache:

* ``today``: transformers rollouts, one episode at a time; fp32 update, one rollout per micro-batch
  (the configuration ``s3 train local`` ran before issue 23, on today's code); generator on
  ``python -m llama_cpp.server`` (one request at a time);
* ``llama.cpp``: rollouts on llama.cpp (the live adapter as a GGUF LoRA, ``--contexts`` episodes at once),
  length-sorted micro-batches, bf16 autocast where the CPU has it; the same one-slot generator;
* ``llama.cpp-slots``: the same with the generator on llama.cpp's ``llama-server`` with ``--slots`` parallel
  slots, the rewards of a step sent concurrently (needs ``--llama-server`` or ``$S3_LLAMA_SERVER``, built by
  ``scripts/build_llama_server.sh``; skipped without one);
* ``llama.cpp-grpo``: the llama.cpp configuration with GRPO (4 samples per question, no value head).

It reports episodes an hour, generated tokens a second and the rollout, reward and update seconds per step,
then the seconds per question of the shipped trained searcher (search and answer) in transformers and in
llama.cpp. Results are checkpointed in ``--out`` (a rerun skips what is done) and written to
docs/benchmarks.md.

Command: ``python benchmarks/train_throughput.py`` (about 40 minutes on 2 cores; ``--quick`` checks it runs).
The GRPO configuration's episodes come 4 to a question, so its reward is not comparable with the others'.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

SEARCH, TURN_TOKENS, BUDGET, INITIAL_K = "5-3-3", 100, 3, 3
CONFIGS: dict[str, dict[str, Any]] = {
    "today": {"engine": "transformers", "contexts": 1, "bf16": False, "micro_batch_tokens": 1,
              "reward_concurrency": 1},
    "llama.cpp": {"engine": "llama.cpp", "contexts": 2, "bf16": None, "reward_concurrency": 1},
    "llama.cpp-slots": {"engine": "llama.cpp", "contexts": 2, "bf16": None},
    "llama.cpp-grpo": {"engine": "llama.cpp", "contexts": 2, "bf16": None, "algorithm": "grpo", "group_size": 4,
                       "reward_concurrency": 1},
}
SLOTTED = {"llama.cpp-slots"}
"""Configurations whose generator is llama-server with parallel slots (the others: one-slot llama_cpp.server)."""


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train-throughput")
    parser.add_argument("--steps", type=int, default=2, help="Training steps per configuration.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-questions", type=int, default=10)
    parser.add_argument("--llama-server", type=Path, default=None,
                        help="llama.cpp's llama-server (default: $S3_LLAMA_SERVER or one on PATH) for llama.cpp-slots.")
    parser.add_argument("--slots", type=int, default=4, help="Parallel slots of llama-server (llama.cpp-slots).")
    parser.add_argument("--only", default=None, help="Comma-separated configurations (and/or 'eval').")
    parser.add_argument("--section", default="train_throughput",
                        help="Section of docs/benchmarks.md to write (a subset run keeps the full table's).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes, to check the script runs; writes no docs.")
    parser.add_argument("--no-write", action="store_true", help="Do not write docs/benchmarks.md.")
    args = parser.parse_args()
    if args.quick:
        global SEARCH, TURN_TOKENS, INITIAL_K
        args.steps, args.batch_size, args.eval_questions, args.no_write = 1, 1, 1, True
        CONFIGS["llama.cpp-grpo"] |= {"group_size": 2, "batch_size": 2}      # one question, two samples
        SEARCH, TURN_TOKENS, INITIAL_K = "2-1-1", 16, 1    # one search, short turns, a short first prompt: it runs
    return args


def setup_world(args: argparse.Namespace) -> tuple[Any, Path, Path]:
    from s3_agents.qa import QAExample
    from s3_agents.retrievers import build_index
    from s3_agents.training.data import prepare_dataset
    from s3_agents.worlds import build_world, default_world_dir, load_world

    world = build_world(300, seed=5) if args.quick else load_world(default_world_dir())
    index = args.out / "world-index"
    if not (index / "CURRENT").is_file():
        build_index(world.passages, index, show_progress=False)
    parquet = args.out / "train.parquet"
    if not parquet.is_file():
        items = [QAExample(q["question"], tuple(q["answers"]), q["id"], "s3_world") for q in world.split("train")]
        prepare_dataset(items, parquet)
    return world, index, parquet


def _train(args: argparse.Namespace, name: str, index: Path, parquet: Path, generator_url: str) -> dict[str, Any]:
    import torch

    from s3_agents.retrievers import load_retriever
    from s3_agents.trained import trained_searcher_dir
    from s3_agents.training.local import LocalRun, LocalSettings, _read_csv, read_rows

    out = args.out / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    config = CONFIGS[name] | ({"reward_concurrency": args.slots} if name in SLOTTED else {})
    settings = LocalSettings(**{"steps": args.steps, "batch_size": args.batch_size, "search": SEARCH,
                                "max_turn_tokens": TURN_TOKENS, "max_context_docs": BUDGET, "initial_k": INITIAL_K,
                                "save_every": args.steps} | config)
    run = LocalRun(out, read_rows(parquet), load_retriever(index),
                   {"generator_url": generator_url, "generator_model": "smollm2",
                    "rag_cache": str(args.out / "rag.sqlite"), "retriever": str(index)},
                   settings, init_adapter=trained_searcher_dir("world"))
    torch.manual_seed(0)
    run.train(progress=False)
    rows = _read_csv(out / "metrics.csv")
    per_step = {k: sum(float(r[k]) for r in rows) / len(rows) for k in
                ("seconds", "rollout_seconds", "reward_seconds", "update_seconds", "generated_tokens", "reward",
                 "valid_action_rate")}
    return {"engine": run.engine, "steps": len(rows), "batch_size": settings.batch_size, **per_step,
            "episodes_per_hour": 3600 * settings.batch_size / per_step["seconds"],
            "generated_tokens_per_s": per_step["generated_tokens"] / per_step["rollout_seconds"]}


def _fill_rag_cache(args: argparse.Namespace, index: Path, parquet: Path, generator_url: str) -> None:
    """Naive-RAG baselines of every question the steps will draw, before any configuration is timed.

    The reward computes a missing baseline on the spot; filled first, no configuration pays for them.
    """
    from s3_agents.generator import Generator
    from s3_agents.llm import OpenAICompatClient
    from s3_agents.qa import QAExample
    from s3_agents.rag_cache import RagCache
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.local import LocalRun, LocalSettings, read_rows

    plan = LocalRun(args.out / "cache-plan", read_rows(parquet), None, {},
                    LocalSettings(batch_size=args.batch_size, engine="transformers"))
    rows = [row for step in range(args.steps) for _, row in plan._batch(step)]    # PPO's questions hold GRPO's
    items = [QAExample(row["reward_model"]["ground_truth"]["question"],
                       tuple(row["reward_model"]["ground_truth"]["target"])) for row in rows]
    generator = Generator(OpenAICompatClient(generator_url, "smollm2"))
    cache = RagCache(args.out / "rag.sqlite", retriever_id=RagCache.retriever_key(str(index)),
                     generator_id=generator.name, k=BUDGET)
    try:
        print("naive-RAG baselines:", cache.precompute(items, load_retriever(index), generator, concurrency=1,
                                                       show_progress=False), flush=True)
    finally:
        cache.close()


def _evaluate(args: argparse.Namespace, world: Any, index: Path) -> dict[str, Any]:
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient
    from s3_agents.retrievers import load_retriever
    from s3_agents.searcher import S3Searcher
    from s3_agents.trained import trained_config, trained_searcher

    questions = [q["question"] for q in world.sample("test", args.eval_questions)]
    retriever, generator = load_retriever(index), Generator(LlamaCppClient())
    result: dict[str, Any] = {}
    for engine in ("transformers", "llama.cpp"):
        policy = trained_searcher("world", engine=engine)
        searcher = S3Searcher(policy, retriever, trained_config("world"))
        started = time.perf_counter()
        turns = 0
        for q in questions:
            state = searcher.search(q)
            generator.answer(q, state["context"])
            turns += len(state["outputs"])
        result[engine] = {"seconds_per_question": (time.perf_counter() - started) / len(questions),
                          "turns_per_question": turns / len(questions)}
        policy.close()
    result["questions"] = len(questions)
    return result


def _report(results: dict[str, Any], args: argparse.Namespace) -> str:
    title = "Training and evaluation throughput" if not args.only else f"Training throughput: {args.only}"
    lines = [f"## {title} (`benchmarks/train_throughput.py`)", "",
             f"Command: `python benchmarks/train_throughput.py --steps {args.steps} --llama-server "
             "build/llama-server/llama-server"
             + (f" --only {args.only} --section {args.section}" if args.only else "")
             + "` (after `bash scripts/build_llama_server.sh`)", "",
             f"`s3 train local` from the shipped adapter on the benchmark world's train split: {SEARCH}, "
             f"{TURN_TOKENS} tokens a turn, {BUDGET}-document budget, temperature 0.6, {args.batch_size} episodes a "
             f"step, SmolLM2 as generator (`python -m llama_cpp.server`, one request at a time; llama.cpp-slots: "
             f"`llama-server` with {args.slots} parallel slots), the same seeded questions and naive-RAG cache for "
             "every configuration, one process. Mean of the steps. An episode's reward is requested when it ends, "
             "while the next episodes roll out; the reward column sums the episodes' reward latencies, which "
             "overlap the rollouts.", "",
             "| configuration | engine | generator | episodes/hour | generated tokens/s | rollout s/step "
             "| reward s/step (summed) | update s/step | reward |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in CONFIGS:
        r = results.get(name)
        if r:
            generator = f"llama-server, {args.slots} slots" if name in SLOTTED else "llama_cpp.server"
            lines.append(f"| {name} | {r['engine']} | {generator} | {r['episodes_per_hour']:.0f} "
                         f"| {r['generated_tokens_per_s']:.1f} | {r['rollout_seconds']:.1f} "
                         f"| {r['reward_seconds']:.1f} | {r['update_seconds']:.1f} | {r['reward']:+.3f} |")
    if "llama.cpp-grpo" in results:
        lines += ["", "GRPO's episodes come 4 to a question (2 questions a step), so its reward is not comparable."]
    for name in ("llama.cpp", "llama.cpp-slots"):
        if "today" in results and name in results:
            ratio = results[name]["episodes_per_hour"] / results["today"]["episodes_per_hour"]
            lines += ["", f"Episodes per hour, {name} / today: **{ratio:.2f}x** (goal 5x)."]
    if "llama.cpp" in results and "llama.cpp-slots" in results:
        ratio = results["llama.cpp-slots"]["episodes_per_hour"] / results["llama.cpp"]["episodes_per_hour"]
        lines += ["", f"Episodes per hour, llama.cpp-slots / llama.cpp (the generator's parallel slots alone): "
                      f"**{ratio:.2f}x**."]
    if "eval" in results:
        e = results["eval"]
        t, ll = e["transformers"]["seconds_per_question"], e["llama.cpp"]["seconds_per_question"]
        lines += ["", f"Shipped trained searcher, {e['questions']} world test questions (search + SmolLM2 answer): "
                      f"transformers {t:.1f} s/question, llama.cpp {ll:.1f} s/question: **{ll / t:.2f}** of "
                      "transformers' time (goal at most 0.2)."]
    anchor = "throughput-on-this-2-core-machine-what-was-reached-and-what-bounds-it"
    lines += ["", f"What bounds these figures, with the profile of a step: [training.md](training.md#{anchor})."]
    return "\n".join(lines)


def main() -> int:
    from _report import write_section

    from s3_agents.llm import LocalLlamaServer, find_llama_server

    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / ("results-quick.json" if args.quick else "results.json")
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    wanted = args.only.split(",") if args.only else [*CONFIGS, "eval"]
    binary = args.llama_server or find_llama_server()
    if binary is None and SLOTTED & set(wanted):
        print(f"no llama-server (--llama-server, $S3_LLAMA_SERVER): skipping {sorted(SLOTTED & set(wanted))}")
        wanted = [name for name in wanted if name not in SLOTTED]
    world, index, parquet = setup_world(args)
    with contextlib.ExitStack() as stack:
        servers: dict[str, Any] = {"one": stack.enter_context(LocalLlamaServer(n_ctx=8192))}
        _fill_rag_cache(args, index, parquet, servers["one"].url)
        for name in wanted:
            if name in results:
                continue
            kind = "slots" if name in SLOTTED else "one"
            if kind not in servers:
                servers[kind] = stack.enter_context(
                    LocalLlamaServer(n_ctx=8192, parallel=args.slots, binary=binary) if kind == "slots"
                    else LocalLlamaServer(n_ctx=8192))
            print(f"== {name}", flush=True)
            results[name] = (_evaluate(args, world, index) if name == "eval"
                             else _train(args, name, index, parquet, servers[kind].url))
            print(json.dumps(results[name], indent=1), flush=True)
            saved.write_text(json.dumps(results, indent=1))
    body = _report(results, args)
    print(body)
    if not args.no_write:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
