"""The starter project's splits under other generate settings, on equal terms with data/splits:
generate runs with PARAMS, then train keeps the committed training split's hand-written and
template rows, plus the new augmented rows whose source example trained there; valid and test are
the committed ones, so a sweep chooses on the same rows (no valid or test query is trained on,
checked with the split stage's own "same question", text.query_key). The no-call bank rows stay as
committed (none added or taken away: the bank tops up to a share of the dataset, which augmentation
settings move by a row or two here).

    python bench/starter_splits.py /tmp/stdrop --params /tmp/params-drop.yaml   # -> /tmp/stdrop/splits
    bash bench/starter_sweep_gpu.sh /tmp/gemma.gguf /tmp/sw bench/configs/seeds3.json /tmp/stdrop/splits

Needs models/base (its tokenizer) and data/splits (`dvc repro split`).
"""
import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from calltune.data.text import query_key
from calltune.io import read_jsonl, write_jsonl


def main(out: Path, params_file: str, base_model: str = "models/base", reference: Path = Path("data/splits")) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "stages/generate.py", "--params", params_file, "--base-model", base_model,
                    "--synthetic", "data/synthetic/examples.jsonl", "--out", str(out / "dataset.jsonl"),
                    "--metrics", str(out / "data.json")], check=True)
    rows = lambda path: [row for _, row in read_jsonl(path)]
    before = rows(reference / "train.jsonl")
    ids = {row["id"] for row in before}
    kept = [row for row in before if "origin" not in row["meta"]]  # hand-written, templates, no-call bank
    augmented = [row for row in rows(out / "dataset.jsonl") if row["meta"].get("origin") in ids]
    train = kept + augmented
    held = {query_key(row["messages"]) for split in ("valid", "test") for row in rows(reference / f"{split}.jsonl")}
    leaked = [row["id"] for row in train if query_key(row["messages"]) in held]
    if leaked:
        raise SystemExit(f"{len(leaked)} training rows ask a valid or test query: {leaked[:5]}")
    splits = out / "splits"
    splits.mkdir(exist_ok=True)
    write_jsonl(splits / "train.jsonl", train)
    for split in ("valid", "test"):
        shutil.copyfile(reference / f"{split}.jsonl", splits / f"{split}.jsonl")
    print(f"train: {len(kept)} committed rows + {len(augmented)} augmented "
          f"(committed: {len(before) - len(kept)}); valid and test as committed -> {splits}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for dataset.jsonl and splits/")
    parser.add_argument("--params", default="params.yaml", help="the generate settings to compare")
    parser.add_argument("--base-model", default="models/base", help="the base stage's model (for its tokenizer)")
    args = parser.parse_args()
    main(args.out, args.params, args.base_model)
