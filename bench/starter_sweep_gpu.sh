#!/usr/bin/env bash
# The starter train defaults on a bare GPU machine: build models/base as the base stage does (the
# embedded GGUF + the shipped foundation), then bench/sweep.py over a configs file (run lengths a
# CPU's time budget allows, learning rates, ranks; choose on valid, never on test).
#
#   setsid nohup bash bench/starter_sweep_gpu.sh /tmp/gemma.gguf /tmp/sw bench/configs/starter_budget.json > /tmp/sw.log 2>&1 &
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
if [ -z "${STARTER_SWEEP_COPY:-}" ]; then
  mkdir -p "$work/src"
  tar -C "$(dirname "$0")/.." --exclude='./.*' --exclude=./models --exclude=./node_modules --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -
  STARTER_SWEEP_COPY=1 exec bash "$work/src/bench/starter_sweep_gpu.sh" "$gguf" "$work" "$configs" "$splits"
fi
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
python bench/foundation_gpu.py base --gguf "$gguf" --out "$work/base" --foundation calltune/foundation/weights
python bench/sweep.py "$work/base" "$work/runs" "$configs" --splits "${splits:-data/splits}" --eval-batch 64
echo "starter sweep done"
