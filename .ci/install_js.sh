#!/usr/bin/env bash
# Install what the JavaScript clients of the ONNX export need (tests marked `js`):
#   - Debian's chromium, for the headless browser test (playwright-core drives it; no browser download);
#   - the npm packages pinned in package-lock.json: @huggingface/transformers (Transformers.js) and
#     playwright-core. onnxruntime-node's postinstall would download CUDA binaries: skip it, the CPU
#     binaries ship inside the package.
# Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -d node_modules/@huggingface/transformers ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
echo "install_js: $(node --version), $(chromium --version 2>/dev/null | head -1), transformers.js $(node -p "require('./node_modules/@huggingface/transformers/package.json').version")"
