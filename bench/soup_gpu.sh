#!/usr/bin/env bash
# The rule for a default soup of three (bench/README.md, "soups of three to five", set 2026-12-08) in
# one detached run on a bare GPU machine: nine new seeds of the new domain's default run (76 steps) and
# six of the starter at the steps a 2-core CPU's budget fits (94), then three disjoint soups of three of
# the new domain's runs and two of the starter's, every run and soup scored (bench/sweep.py,
# bench/soup.py: the fused models' mean, equal within 1e-5 to what train.soup: 3 writes).
#
#   setsid nohup bash bench/soup_gpu.sh /tmp/gemma.gguf /tmp/soup /tmp/nd/splits data/splits > /tmp/soup.log 2>&1 &
#
# The rule: make train.soup: 3 the default where one run is cheap (CUDA) if the three new-domain soups'
# mean dev exact is at least 0.03 above the mean of the nine single runs, and the starter's two soups'
# mean valid exact is not below its six runs' mean. Choose on dev and valid; test is reported only.
# Eight sweep processes share the card (7.5 GiB each while scoring at batch 64: more ran out of memory on
# an H100); on a machine without internet install bench/gpu_wheels.sh's wheels first. The 2026-12-08 run
# of the pair rule this replaced trained its runs in ~5 minutes and scored each in 50-90 s.
set -euo pipefail
gguf=$(realpath "${1:?the embedded Gemma 3 270M GGUF}")
work=$(realpath -m "${2:-/tmp/soup}")
nd=$(realpath "${3:?the new domain splits (bench/newdomain_splits.py)}")
starter=$(realpath "${4:?the starter splits (dvc repro split: data/splits)}")
. "$(dirname "$0")/gpu_copy.sh" "$work" "$0" "$gguf" "$work" "$nd" "$starter"  # a private copy (gpu_copy.sh)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
# every import the runs and their scoring need, before any training (2026-12-08: llguidance was
# missing, and each scoring failed after its run had trained)
python -c "import gguf, peft, transformers, llguidance, jsonschema; import calltune.constrain"
nd_seeds=(31 32 33 34 35 36 37 38 39)
st_seeds=(31 32 33 34 35 36)
python bench/foundation_gpu.py base --gguf "$gguf" --out "$work/base" --foundation calltune/foundation/weights
python - "$work" "${#nd_seeds[@]}" "${nd_seeds[@]}" "${st_seeds[@]}" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
nd, st = [int(s) for s in sys.argv[3:3 + n]], [int(s) for s in sys.argv[3 + n:]]
def arm(prefix, seeds, **train):
    return [{"name": f"{prefix}{s}", "seed": s, "train": {"compile": False, **train}} for s in seeds]
json.dump(arm("f", nd), open(f"{work}/nd.json", "w"))
json.dump(arm("F", st, max_steps=94), open(f"{work}/st.json", "w"))
json.dump([{"name": "base"}], open(f"{work}/base.json", "w"))
PY
for k in 0 1 2 3 4; do  # shard k: the new domain's runs k and k + 5
  python bench/sweep.py "$work/base" "$work/nd/shard-$k" "$work/nd.json" --splits "$nd" --eval-batch 64 \
    --constrained --score dev,test --shard "$k/5" > "$work/nd-$k.log" 2>&1 &
done
for k in 0 1 2; do  # shard k: the starter's runs k and k + 3
  python bench/sweep.py "$work/base" "$work/st/shard-$k" "$work/st.json" --splits "$starter" --eval-batch 64 \
    --constrained --score valid,test --shard "$k/3" > "$work/st-$k.log" 2>&1 &
done
wait
soup() {  # NAME SPLITS SCORE MODEL...: the soup of the models, scored
  local name=$1 splits=$2 score=$3; shift 3
  python bench/soup.py "$work/soups/$name" "$@" &&
    python bench/sweep.py "$work/soups/$name" "$work/soupeval/$name" "$work/base.json" --splits "$splits" \
      --eval-batch 64 --constrained --score "$score"
}
fused() { local p=$1; shift; for s in "$@"; do ls -d "$work"/*/shard-*/fused-"$p$s"; done; }
for i in 0 3 6; do
  trio=("${nd_seeds[@]:$i:3}")
  soup "nd-f$(IFS=-; echo "${trio[*]}")" "$nd" dev,test $(fused f "${trio[@]}") > "$work/soup-nd-$i.log" 2>&1 &
done
for i in 0 3; do
  trio=("${st_seeds[@]:$i:3}")
  soup "st-F$(IFS=-; echo "${trio[*]}")" "$starter" valid,test $(fused F "${trio[@]}") > "$work/soup-st-$i.log" 2>&1 &
done
wait
python - "$work" <<'PY'
import glob, json, statistics, sys
work = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{work}/*/shard-*/results.json")) + sorted(glob.glob(f"{work}/soupeval/*/results.json")):
    for row in json.load(open(f)):
        name = f.split("/")[-2] if "soupeval" in f else row["name"]
        rows[name] = {s: row[s]["exact_match"] for s in ("valid", "dev", "test") if s in row}
        print(name, rows[name])
for prefix, split in (("f", "dev"), ("F", "valid")):
    singles = [r[split] for n, r in rows.items() if n[:1] == prefix and n[1:].isdigit()]
    soups = [r[split] for n, r in rows.items() if n[3:4] == prefix and "-" in n[4:]]
    if singles and soups:
        print(f"{prefix}: {split} singles {statistics.mean(singles):.3f} (n={len(singles)}), "
              f"soups of 3 {statistics.mean(soups):.3f} (n={len(soups)})")
PY
echo "soup rule done"
