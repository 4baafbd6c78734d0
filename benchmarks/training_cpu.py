"""CPU training costs: agent-loop rollouts and PPO steps (verl core_algos) on SmolLM2-135M.

    python benchmarks/training_cpu.py             # full run, writes docs/benchmarks.md
    python benchmarks/training_cpu.py --quick --no-write

SmolLM2-135M-Instruct (from its wheel) runs in this process through transformers. In one run, on the same
model and questions: episodes of the ``s3_searcher`` agent loop (``TransformersServer`` in place of vLLM),
with the share of their wall time spent generating; the same episodes through the plain searcher
(``S3Searcher`` + ``TransformersClient``), to show what the token bookkeeping costs; and ``CpuPPO.step`` on
the collected rollouts, with the process's peak memory. The GPU path (verl's trainer) is not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from _report import write_section  # noqa: E402

from s3_agents import FaissRetriever, S3Searcher, SearchConfig, TransformersClient  # noqa: E402
from s3_agents.corpus import load_demo_corpus  # noqa: E402
from s3_agents.embedders import load_embedder  # noqa: E402
from s3_agents.qa import load_demo_qa  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _spans(output) -> int:
    """Generations in an episode: runs of 1s in its response mask."""
    mask = [0, *output.response_mask]
    return sum(1 for a, b in zip(mask, mask[1:]) if b and not a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--turn-tokens", type=int, default=64)
    parser.add_argument("--config", default="4-2-2")
    parser.add_argument("--model", default=None,
                        help="a transformers model folder or hub id (default: SmolLM2-135M-Instruct from its wheel)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.turn_tokens, args.config = 1, 16, "2-1-1"

    import tempfile

    import torch
    from transformers.utils import logging as hf_logging

    from s3_agents.training.agent_loop import S3AgentLoop
    from s3_agents.training.export import save_policy
    from s3_agents.training.local_server import TransformersServer, load_policy_model
    from s3_agents.training.ppo import CpuPPO, Rollout

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    retriever = FaissRetriever.from_passages(load_demo_corpus().passages, load_embedder("minilm"))
    questions = [q.question for q in load_demo_qa()[:args.episodes]]
    model, tokenizer = load_policy_model(args.model)
    folder = save_policy(model, tokenizer, Path(tempfile.mkdtemp(prefix="s3-bench-")) / "smollm2")
    loop = S3AgentLoop.standalone(TransformersServer(model, tokenizer, seed=0), tokenizer, retriever=retriever,
                                  search=args.config, initial_k=2, max_turn_tokens=args.turn_tokens,
                                  prompt_length=2048, response_length=2048)
    sampling = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "logprobs": True}   # greedy: both paths comparable

    outputs, loop_time, gen_time = [], 0.0, 0.0
    for question in questions:
        start = time.perf_counter()
        out = asyncio.run(loop.run(sampling, raw_prompt=[{"role": "user", "content": question}]))
        loop_time += time.perf_counter() - start
        gen_time += out.metrics.generate_sequences
        outputs.append(out)
    generated = sum(sum(o.response_mask) for o in outputs)

    client = TransformersClient(str(folder))
    searcher = S3Searcher(client, retriever, SearchConfig.from_name(args.config, initial_k=2,
                                                                     max_new_tokens=args.turn_tokens))
    start = time.perf_counter()
    plain_generations = 0
    for question in questions:
        plain_generations += len(searcher.search(question)["outputs"])
    plain_time = time.perf_counter() - start

    rollouts = [Rollout.from_output(o, float(i % 2)) for i, o in enumerate(outputs)]   # alternate rewards
    ppo = CpuPPO(model)
    start = time.perf_counter()
    metrics = ppo.step(rollouts)
    step_time = time.perf_counter() - start
    tokens = sum(len(o.prompt_ids) + len(o.response_ids) for o in outputs)

    n = len(questions)
    command = "python benchmarks/training_cpu.py" + (f" --model {args.model}" if args.model else "")
    body = "\n".join([
        "## Training on a CPU (SmolLM2-135M, agent loop and CpuPPO)",
        "",
        f"Command: `{command}` ({n} demo questions, loop {args.config}, "
        f"{args.turn_tokens} tokens per turn, greedy; PPO on those {n} rollouts, rewards alternating 0/1).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| agent-loop episode (`S3AgentLoop.run`, `TransformersServer`) | {loop_time / n:.2f} s |",
        f"| share of it spent generating | {gen_time / loop_time:.0%} |",
        f"| plain searcher episode (`S3Searcher` + `TransformersClient`, same model) | {plain_time / n:.2f} s |",
        f"| agent loop / plain searcher, wall time | {loop_time / plain_time:.2f} |",
        f"| generated tokens per episode (mask 1) | {generated / n:.0f} |",
        f"| generations per episode: agent loop / plain | {sum(map(_spans, outputs)) / n:.1f} / "
        f"{plain_generations / n:.1f} |",
        f"| `CpuPPO.step` on {n} rollouts ({tokens} tokens: old, ref and value passes, update) | {step_time:.1f} s |",
        f"| PPO step time per 1k tokens | {step_time / tokens * 1000:.2f} s |",
        f"| peak memory of the process (policy, reference copy, AdamW state) | {peak_rss_gib():.1f} GiB |",
        f"| losses of that step: policy / value | {metrics['actor/pg_loss']:+.2e} / {metrics['critic/vf_loss']:.2e} |",
        "",
        "Reading: both paths spend nearly all their time generating with the same model; the agent loop also",
        "keeps token ids and asks for per-token logits (for log-probs). `standalone` runs in-process retrieval",
        "inline: a query embedded in a worker thread made the following generation 1.7x slower on 2 cores.",
        "The ratio is from one run on the same model and questions. verl's GPU trainer is not measured by this",
        "script; no GPU run is recorded yet (docs/training.md says what a GPU run still has to confirm).",
    ])
    print(body)
    if not args.no_write:
        write_section("training_cpu", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
