#!/bin/bash
# While a `benchmarks/train_real.py --stage ...` runs, commit its evaluation rows every 10 minutes, so a session
# cut anywhere loses at most 10 minutes of evaluation: a later `--stage dev|test` on any machine resumes from
# docs/train-real/rows/ (train_real._results). Start it beside the stage:
#   nohup python benchmarks/train_real.py --stage test ... > runs/train-real/test.log 2>&1 &
#   nohup bash benchmarks/train_real_keep.sh > /dev/null 2>&1 &
cd "$(dirname "$0")/.." || exit 1
keep() {
  python - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from train_real import KEPT, keep_rows
for results in Path("runs/train-real").glob("eval-*/*/results.jsonl"):
    keep_rows(results, KEPT / f"{results.parent.parent.name}-{results.parent.name}.jsonl")
PY
  git add docs/train-real/rows && git diff --cached --quiet -- docs/train-real/rows \
    || git commit -q -m "train-real: evaluation rows so far" -- docs/train-real/rows
}
while pgrep -f "train_real.py --stage" > /dev/null; do
  sleep "${KEEP_SECONDS:-600}"
  keep
done
keep
