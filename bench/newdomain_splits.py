"""The new-domain benchmark (bench/newdomain) as splits for bench/sweep.py: generate and split run as
the pipeline runs them with the benchmark's data and params.yaml's defaults, then the held-out file
(bench/newdomain/test.jsonl) replaces the test split, checked like evaluate.test_files checks it. So a
sweep scores the held-out queries where it would score the test split, and the separately written
dev file (bench/newdomain/dev.jsonl) as a third split; choose on dev or valid, never on test.

    python bench/newdomain_splits.py /tmp/nd          # -> /tmp/nd/splits/{train,valid,test}.jsonl
    python bench/newdomain_splits.py /tmp/nd-aug --params /tmp/params-aug.yaml --sources-of /tmp/nd

`--sources-of DIR` compares generate settings on equal terms: the split is redrawn when the dataset
changes, so instead train keeps only the rows made from DIR's training examples, and DIR's valid
split is reused as is (the same rows to choose on; no valid query is trained on, checked).
    bash bench/starter_sweep_gpu.sh /tmp/gemma.gguf /tmp/sw bench/configs/newdomain_steps.json /tmp/nd/splits

Needs models/base (its tokenizer; `dvc repro base`).
"""
import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from calltune.data.test_files import load_test_file
from calltune.data.text import query_key
from calltune.data.tools import load_tools
from calltune.io import read_jsonl, write_jsonl, write_text
from calltune.params import load_params

BENCH = Path("bench/newdomain")


def main(out: Path, params_file: str = "params.yaml", base_model: str = "models/base",
         sources_of: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    params = load_params(params_file)
    params["generate"].update(tools=str(BENCH / "tools.json"), examples=str(BENCH / "examples.jsonl"), templates="")
    params["generate"]["synthetic"]["enabled"] = False
    write_text(out / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    empty = out / "synthetic.jsonl"
    write_text(empty, "")
    run = [sys.executable, "stages/generate.py", "--params", str(out / "params.yaml"), "--base-model", base_model,
           "--synthetic", str(empty), "--out", str(out / "dataset.jsonl"), "--metrics", str(out / "data.json")]
    subprocess.run(run, check=True)
    subprocess.run([sys.executable, "stages/split.py", "--params", str(out / "params.yaml"), "--dataset",
                    str(out / "dataset.jsonl"), "--out", str(out / "splits"), "--metrics", str(out / "split.json")],
                   check=True)
    splits = out / "splits"
    if sources_of is not None:
        same_sources(splits, out / "dataset.jsonl", sources_of / "splits")
    held_out = load_test_file(BENCH / "test.jsonl", "newdomain", load_tools(BENCH / "tools.json"),
                              [splits / "train.jsonl", splits / "valid.jsonl"], params["generate"]["no_call_answer"])
    write_jsonl(splits / "test.jsonl", held_out)
    dev = load_test_file(BENCH / "dev.jsonl", "dev", load_tools(BENCH / "tools.json"),
                         [splits / "train.jsonl", splits / "valid.jsonl"], params["generate"]["no_call_answer"])
    write_jsonl(splits / "dev.jsonl", dev)
    print(f"{len(held_out)} held-out queries as the test split, {len(dev)} dev queries to choose on -> {splits}")


def same_sources(splits: Path, dataset: Path, reference: Path) -> None:
    """Train on the rows of `dataset` made from `reference`'s training examples; valid is `reference`'s."""
    rows = lambda path: [row for _, row in read_jsonl(path)]
    sources = {row["meta"]["source"] for row in rows(reference / "train.jsonl")}
    valid = rows(reference / "valid.jsonl")
    train = [row for row in rows(dataset) if row["meta"]["source"] in sources]
    asked = {query_key(row["messages"]) for row in valid}
    leaked = [row["id"] for row in train if query_key(row["messages"]) in asked]
    if leaked:
        raise SystemExit(f"{len(leaked)} training rows ask a valid query of {reference}: {leaked[:5]}")
    write_jsonl(splits / "train.jsonl", train)
    write_jsonl(splits / "valid.jsonl", valid)
    print(f"train: {len(train)} rows from the {len(sources)} sources of {reference / 'train.jsonl'}; "
          f"valid: its {len(valid)} rows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for params.yaml, dataset.jsonl and splits/")
    parser.add_argument("--params", default="params.yaml", help="the params the benchmark runs with (default: the defaults)")
    parser.add_argument("--base-model", default="models/base", help="the base stage's model (for its tokenizer)")
    parser.add_argument("--sources-of", type=Path, help="a folder this script made: train only on the rows of its "
                        "training examples and reuse its valid split (compares generate settings)")
    args = parser.parse_args()
    main(args.out, args.params, args.base_model, args.sources_of)
