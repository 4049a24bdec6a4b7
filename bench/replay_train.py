"""A training split with rows of calltune's tool bank replayed beside the user's (an experiment, not a
stage): does training a handful of examples together with rows of the foundation's own kind (other
tools, other requests) keep what the foundation knows and make a better model of the user's tools?

    python bench/replay_train.py /tmp/nd/splits /tmp/nd/replay100.jsonl --rows 100
    # then a bench/sweep.py config {"name": "...", "data": "/tmp/nd/replay100.jsonl"} on the same splits

The replayed rows are drawn (seeded) from foundation/toolbank, as the foundation's corpus offers them
(`with_distractors` with foundation/params.yaml's corpus block, distractors from the bank). Left out:
a row that declares a tool named like one of the user's, and a row whose request is asked in any split
(train, valid, test, dev). Written to OUT: the split's train rows, then the replayed ones.
"""
import argparse
import random
from pathlib import Path

import yaml

from calltune.data.examples import to_record
from calltune.data.text import query_key
from calltune.foundation.corpus import tool_name, with_distractors
from calltune.foundation.toolbank import load_toolbank, toolbank_tools
from calltune.io import read_jsonl, write_jsonl


def main(splits: Path, out: Path, rows: int, seed: int, only_needed: float | None) -> None:
    rows_of = {name: [row for _, row in read_jsonl(splits / f"{name}.jsonl")]
               for name in ("train", "valid", "test", "dev") if (splits / f"{name}.jsonl").is_file()}
    train = rows_of["train"]
    asked = {query_key(row["messages"]) for rows in rows_of.values() for row in rows}
    names = {tool_name(t) for rows in rows_of.values() for row in rows for t in row["tools"]}
    cfg = yaml.safe_load(open("foundation/params.yaml"))["corpus"]
    if only_needed is not None:
        cfg["only_needed"] = only_needed
    rng = random.Random(seed)
    bank = [ex for ex in load_toolbank(seed=seed) if not {tool_name(t) for t in ex.tools} & names]
    pool = [t for t in toolbank_tools() if tool_name(t) not in names]
    rng.shuffle(bank)
    replayed = []
    for example in bank:
        if len(replayed) == rows:
            break
        record = to_record(with_distractors(example, pool, cfg, rng), f"replay-{len(replayed) + 1:05d}",
                           cfg["no_call_answer"])
        if (key := query_key(record["messages"])) not in asked:
            asked.add(key)
            replayed.append(record)
    write_jsonl(out, train + replayed)
    no_call = sum(not row["meta"]["calls"] for row in replayed)
    print(f"{out}: {len(train)} training rows + {len(replayed)} replayed ({no_call} no-call) from "
          f"{len(bank)} tool-bank rows whose tools no split declares")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("splits", type=Path, help="a splits folder (train.jsonl and the held-out splits)")
    parser.add_argument("out", type=Path, help="the training file to write")
    parser.add_argument("--rows", type=int, required=True, help="tool-bank rows to add")
    parser.add_argument("--seed", type=int, default=1234, help="which rows and which distractors (default 1234)")
    parser.add_argument("--only-needed", type=float, help="share of replayed rows offered only the tools they call "
                                                          "(default: foundation/params.yaml's corpus.only_needed)")
    args = parser.parse_args()
    main(args.splits, args.out, args.rows, args.seed, args.only_needed)
