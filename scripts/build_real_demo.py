"""Build the small real corpus shipped for `s3 demo --trained`: HotpotQA dev questions with their paragraphs.

The questions are a seeded sample of the *dev* split of `s3 data hotpotqa` (the split tuned on, never the test
split reported on); the corpus is their distractor-setting paragraphs (10 a question), pooled and deduplicated
as `s3 data` does. Written in the world layout (every question in `dev.jsonl`) to `s3_agents/data/realqa/`,
with its attribution.

Usage: python scripts/build_real_demo.py [--data runs/realqa] [--source ../shared/data/realqa/hotpotqa/dev_1025.jsonl]
       [--questions 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "s3_agents" / "data" / "realqa"

ATTRIBUTION = """# The real demo corpus

{questions} HotpotQA questions and the {passages} Wikipedia paragraphs of their distractor setting (10 a
question, pooled and deduplicated), for `s3 demo --trained` and `load_world(real_demo_dir())`. Every question is
from the dev split of `s3 data hotpotqa` over `dev_1025.jsonl` (seed 0): the searcher was tuned on that split,
never trained on it, and the reported test split shares nothing with it. Built by
`python scripts/build_real_demo.py`; text unchanged except that each paragraph's sentences are joined on one line.

Source: HotpotQA (Yang et al., "HotpotQA: A Dataset for Diverse, Explainable Multi-hop Question Answering",
EMNLP 2018), distractor setting, dev questions, as published in megagonlabs/RPT
(`data/hotpotqa/*.jsonl`, commit cf2bc1b1b4edd0318b84179e732ec476c4e20a6e).

License: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/). The paragraphs are from English
Wikipedia (CC BY-SA). This folder is a derivative of HotpotQA under the same license; keep this attribution with
any copy.
"""


def main() -> None:
    from s3_agents.realqa import pool_records, read_qa_records, write_real_qa
    from s3_agents.worlds import load_world

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "realqa", help="Folder of `s3 data hotpotqa`.")
    parser.add_argument("--source", type=Path,
                        default=ROOT.parent / "shared" / "data" / "realqa" / "hotpotqa" / "dev_1025.jsonl")
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()

    picked = {q["id"] for q in load_world(args.data).sample("dev", args.questions)}
    records = [r for r in read_qa_records(args.source, "hotpotqa") if r.id in picked]
    if len(records) != len(picked):
        raise SystemExit(f"{len(picked) - len(records)} of the sampled dev questions are not in {args.source}")
    world = pool_records(records, shares=(0, 1, 0))
    manifest = write_real_qa(world, OUT, sources=["hotpotqa/dev_1025.jsonl (dev split of `s3 data hotpotqa`, "
                                                  f"{args.questions} sampled with seed 0)"], indexes=False)
    (OUT / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(questions=len(records), passages=manifest["passages"]))
    print(json.dumps({"passages": manifest["passages"], "questions": len(records)}))


if __name__ == "__main__":
    main()
