#!/usr/bin/env bash
# The starter train defaults on a bare GPU machine: build models/base as the base stage does (the
# embedded GGUF + the shipped foundation), then bench/sweep.py over a configs file (run lengths a
# CPU's time budget allows, learning rates, ranks; choose on valid, never on test).
#
#   setsid nohup bash bench/starter_sweep_gpu.sh /tmp/gemma.gguf /tmp/sw bench/configs/starter_budget.json > /tmp/sw.log 2>&1 &
#
# SWEEP_PROCS=N (default 1) runs the configs as N bench/sweep.py processes side by side on the card
# (--shard K/N, outputs in WORK/runs/shard-K, every row gathered in WORK/runs/results.json at the end);
# at most 8 on an 80 GB H100 (6-9 GiB each; twelve ran it out of memory).
#
# A fourth argument names other splits (train/valid/test.jsonl): the new-domain benchmark's, with its
# held-out file as test (made by bench/newdomain_splits.py).
#
# On a machine without internet, install bench/gpu_wheels.sh's wheels first (the project's transformers
# and tokenizer pins). Needs data/splits (dvc repro split) and runs from a private copy (the device tool re-sends the
# working tree with every call; a poll must not replace files while Python imports them).
set -euo pipefail
gguf=$(realpath "${1:?the embedded Gemma 3 270M GGUF}")
work=$(realpath -m "${2:-/tmp/sw}")
configs=${3:-bench/configs/starter_budget.json}
splits=${4:+$(realpath "$4")}  # default: the copy's data/splits
. "$(dirname "$0")/gpu_copy.sh" "$work" "$0" "$gguf" "$work" "$configs" "$splits"  # a private copy (gpu_copy.sh)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
python bench/foundation_gpu.py base --gguf "$gguf" --out "$work/base" --foundation calltune/foundation/weights
procs=${SWEEP_PROCS:-1}
if [ "$procs" -le 1 ]; then
  python bench/sweep.py "$work/base" "$work/runs" "$configs" --splits "${splits:-data/splits}" --eval-batch 64
else
  for k in $(seq 0 $((procs - 1))); do
    python bench/sweep.py "$work/base" "$work/runs/shard-$k" "$configs" --splits "${splits:-data/splits}" \
      --eval-batch 64 --shard "$k/$procs" > "$work/runs-shard-$k.log" 2>&1 &
  done
  wait
  python - "$work/runs" <<'PY'
import json, sys
from pathlib import Path
runs = Path(sys.argv[1])
rows = [row for f in sorted(runs.glob("shard-*/results.json")) for row in json.loads(f.read_text())]
(runs / "results.json").write_text(json.dumps(rows, indent=1))
for row in rows:
    print(json.dumps(row))
PY
fi
echo "starter sweep done"
