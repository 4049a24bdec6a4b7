#!/usr/bin/env bash
# Wheels for running bench/sweep.py or bench/starter_sweep_gpu.sh on a GPU machine that has PyTorch
# (Python 3.12) but no internet: the packages calltune needs there beyond torch, at the versions this
# checkout's .venv has (so the base model and its tokenizer are built as on the CPU: a transformers 5.x
# image rebuilds the GGUF tokenizer without the FunctionGemma tokens, and format auto then fails).
#
#   bash bench/gpu_wheels.sh .whl        # here, with internet
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site   # there
set -euo pipefail
out=${1:?a folder for the wheels}
cd "$(dirname "$0")/.."
packages=(gguf transformers tokenizers huggingface_hub safetensors sentencepiece protobuf peft
          jsonschema jsonschema-specifications referencing rpds-py attrs)
pins=()
for name in "${packages[@]}"; do
  version=$(.venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  pins+=("$name==$version")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out" "${pins[@]}"
echo "${#pins[@]} wheels in $out: ${pins[*]}"
