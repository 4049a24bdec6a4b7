#!/usr/bin/env bash
# One detached run of the foundation on a bare GPU machine: base -> corpus -> train -> final
# (adapter, fused model, held-out BFCL scores), every step through bench/foundation_gpu.py.
#
#   setsid nohup bash bench/foundation_gpu.sh /tmp/gemma.gguf /tmp/fw > /tmp/fw.log 2>&1 &
#
# The training config is named here so the run's record (adapter/sweep.json) says what ran.
# Compiled decoder layers first (train.compile: the step is launch-bound on a GPU); if that run
# fails, the same config eager, with the steps an eager run fits in its time budget.
set -euo pipefail
gguf=$(realpath "${1:?the embedded Gemma 3 270M GGUF}")
work=$(realpath -m "${2:-/tmp/fw}")
# Run from a private copy: the device tool re-sends the working tree with every call, and a poll
# that lands while Python imports calltune breaks the run (it did, once).
if [ -z "${FOUNDATION_GPU_COPY:-}" ]; then
  mkdir -p "$work/src"
  tar -C "$(dirname "$0")/.." --exclude='./.*' --exclude=./models --exclude=./node_modules --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -
  FOUNDATION_GPU_COPY=1 exec bash "$work/src/bench/foundation_gpu.sh" "$gguf" "$work"
fi
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
run() { python bench/foundation_gpu.py "$@" --work "$work"; }

minutes=${FOUNDATION_MINUTES:-11}  # the training budget: what the session's device time leaves (12 with no refused starts)
common="rank=64,alpha=64,lr=5e-4,warmup_steps=30,epochs=4,eval_every=200,max_minutes=$minutes"
run base --gguf "$gguf"
run corpus
run sweep --config "r64-lr5e-4-compiled:$common,max_steps=3000,compile=true" \
  || run sweep --config "r64-lr5e-4-eager:$common,max_steps=2000,compile=false"
run final
echo "foundation run done"
