#!/usr/bin/env bash
# The soup rule (bench/README.md, "soups of seeds", set 2026-12-07) in one detached run on a bare GPU
# machine: five seeds of the new domain's default run (76 steps) and five of half its length (38, as
# many evaluations), five of the starter at the steps a 2-core CPU's budget fits (94) and five at half
# (47); then the soup of each adjacent pair of seeds (1234+7, 7+11, 11+23, 23+42, 42+1234) of each
# arm and of all five full runs, every soup scored like a run (bench/soup.py, bench/sweep.py).
#
#   setsid nohup bash bench/soup_gpu.sh /tmp/gemma.gguf /tmp/soup /tmp/nd/splits data/splits > /tmp/soup.log 2>&1 &
#
# The rule: adopt soups if the new domain's dev exact, mean of the five full-length pair soups, is at
# least 0.03 above the mean of the five single runs, the same holds on 2 CPU cores, and the starter's
# valid exact does not fall. The half-length arms answer the design question (two runs of half the
# length in one budget against one run of the whole). Choose on dev and valid; test is reported only.
# Eight sweep processes share the card (6-9 GiB each); on a machine without internet install
# bench/gpu_wheels.sh's wheels first. ~15 minutes on one H100 (not yet run there).
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
seeds=(1234 7 11 23 42)
python bench/foundation_gpu.py base --gguf "$gguf" --out "$work/base" --foundation calltune/foundation/weights
python - "$work" "${seeds[@]}" <<'PY'
import json, sys
work, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
def arm(prefix, **train):
    return [{"name": f"{prefix}{s}", "seed": s, "train": {"compile": False, **train}} for s in seeds]
json.dump(arm("f") + arm("h", max_steps=38, eval_every=7), open(f"{work}/nd.json", "w"))
json.dump(arm("F", max_steps=94) + arm("H", max_steps=47), open(f"{work}/st.json", "w"))
json.dump([{"name": "base"}], open(f"{work}/base.json", "w"))
PY
for k in 0 1 2 3 4; do  # shard k: the new domain's full run of seed k, then its half run
  python bench/sweep.py "$work/base" "$work/nd/shard-$k" "$work/nd.json" --splits "$nd" --eval-batch 64 \
    --constrained --shard "$k/5" > "$work/nd-$k.log" 2>&1 &
done
for k in 0 1 2; do
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
fused() { ls -d "$work/$1"/shard-*/fused-"$2"; }
jobs=0
for arm in nd:f nd:h st:F st:H; do
  set=${arm%:*} p=${arm#*:}
  if [ "$set" = nd ]; then splits=$nd score=valid,dev,test; else splits=$starter score=valid,test; fi
  for i in 0 1 2 3 4; do
    a=${seeds[$i]} b=${seeds[$(((i + 1) % 5))]}
    soup "$set-$p$a-$b" "$splits" "$score" "$(fused "$set" "$p$a")" "$(fused "$set" "$p$b")" \
      > "$work/soup-$set-$p$a-$b.log" 2>&1 &
    jobs=$((jobs + 1)); [ $((jobs % 8)) -eq 0 ] && wait
  done
done
soup nd-fall "$nd" valid,dev,test $(for s in "${seeds[@]}"; do fused nd "f$s"; done) > "$work/soup-nd-fall.log" 2>&1 &
wait
python - "$work" <<'PY'
import glob, json, sys
work = sys.argv[1]
for f in sorted(glob.glob(f"{work}/*/shard-*/results.json")) + sorted(glob.glob(f"{work}/soupeval/*/results.json")):
    for row in json.load(open(f)):
        name = f.split("/")[-2] if "soupeval" in f else row["name"]
        print(name, {s: row[s]["exact_match"] for s in ("valid", "dev", "test") if s in row})
PY
echo "soup rule done"
