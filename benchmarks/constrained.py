"""Invalid actions of the untrained searcher (SmolLM2-135M) with and without the action grammar.

The same questions (the benchmark world's dev split), the same retriever and sampling, llama.cpp in-process:
once free, once under :func:`s3_agents.protocol.grammar.action_grammar`. Reports invalid turns / turns, episodes
with at least one valid search, stop reasons, answer-in-context of the final context and seconds per episode.

Command: ``python benchmarks/constrained.py``
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from _report import write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    n = 1 if args.quick else args.questions

    from s3_agents import FaissRetriever, S3Searcher, SearchConfig
    from s3_agents.embedders import load_embedder
    from s3_agents.llm import LlamaCppClient
    from s3_agents.metrics import answer_in_context
    from s3_agents.worlds import build_world, default_world_dir, load_world

    world = build_world(300, seed=5) if args.quick else load_world(default_world_dir())
    retriever = FaissRetriever.from_passages(world.passages, load_embedder("minilm"))
    questions = world.split("dev")[:n]
    llm = LlamaCppClient(n_ctx=4096, seed=0)
    rows = []
    for constrained in (False, True):
        config = SearchConfig.from_name("5-3-3", max_new_tokens=100, temperature=0.6, constrained=constrained,
                                        max_context_docs=3)
        searcher = S3Searcher(llm, retriever, config)
        started = time.perf_counter()
        states = [searcher.search(q["question"]) for q in questions]
        seconds = (time.perf_counter() - started) / len(states)
        turns = sum(len(s["outputs"]) for s in states)
        invalid = sum(s["invalid"] for s in states)
        stops = Counter(s["stop_reason"] for s in states)
        found = sum(answer_in_context(s["context"], q["answers"]) for s, q in zip(states, questions))
        rows.append(f"| {'grammar' if constrained else 'free'} | {invalid}/{turns} ({100 * invalid / turns:.0f}%) | "
                    f"{sum(bool(s['queries']) for s in states)}/{len(states)} | "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(stops.items()))} | "
                    f"{100 * found / len(states):.0f}% | {seconds:.1f} |")
    llm.close()
    body = "\n".join([
        "## Constrained decoding: the untrained searcher's actions (`benchmarks/constrained.py`)", "",
        f"SmolLM2-135M-Instruct (llama.cpp in-process), {len(questions)} dev questions of the benchmark world, 5-3-3, "
        "100 tokens per turn, temperature 0.6, context capped at 3 documents.", "",
        "| decoding | invalid turns | episodes with a search | stop reasons | answer in context | s / episode |",
        "|---|---|---|---|---|---|", *rows, "",
        "Command: `python benchmarks/constrained.py`",
    ])
    print(body)
    if not args.no_write:
        write_section("constrained", body)


if __name__ == "__main__":
    main()
