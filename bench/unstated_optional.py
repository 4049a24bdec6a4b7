"""What dropping the optional arguments a request does not state would do to saved predictions (not a
test, not a stage): the new domain's misses are often optional arguments nobody asked for
(`bike_type: electric`, a `start_date`), so this asks, offline, whether a post-hoc filter would help.

    python bench/sweep.py models/base /tmp/nd-sweep configs.json --splits /tmp/nd/splits   # writes pred-*.jsonl
    python bench/unstated_optional.py /tmp/nd/splits/dev.jsonl /tmp/nd-sweep/pred-nd-default-dev.jsonl [SPLIT PRED ...]

For each split and its predictions it rescores exact match with calltune's judge after each rule:
  none       the predictions as they are
  all        drop every optional argument whose value the request does not state
             (calltune.data.augment.stated: whole words, numbers and dates in their common spellings)
  not-bool   the same, booleans kept (a boolean is never written in a request)
  not-enum   the same, booleans and enum values kept (enums are often paraphrased: "quiet" -> "quietest")
and counts the expected answers that a rule would break by itself (values derived, not stated:
`forecast_days: 2` from "tomorrow", `riders: 3` from "me and my two kids").
"""
import argparse
import json

from calltune.data.augment import stated
from calltune.data.dataset import load_dataset
from calltune.evaluate.metrics import judge, tool_parameters
from calltune.formats.messages import expected_calls, last_user_index

RULES = ("none", "all", "not-bool", "not-enum")


def request(record: dict) -> str:
    return record["messages"][last_user_index(record["messages"])]["content"]


def drop_unstated(calls: list[dict], tools: list[dict], text: str, rule: str) -> list[dict]:
    """`calls` without the optional arguments `rule` drops (see the module docstring)."""
    if rule == "none":
        return calls
    schemas = tool_parameters(tools)
    out = []
    for call in calls:
        schema = schemas.get(call["name"]) or {}
        required, properties = set(schema.get("required", [])), schema.get("properties", {})
        kept = {}
        for key, value in (call.get("arguments") or {}).items():
            keep = key in required or stated(value, text)
            keep |= rule in ("not-bool", "not-enum") and isinstance(value, bool)
            keep |= rule == "not-enum" and "enum" in properties.get(key, {})
            if keep:
                kept[key] = value
        out.append({**call, "arguments": kept})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="SPLIT.jsonl PRED.jsonl, repeated")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give split and prediction files in pairs")
    print(f"{'predictions':<34} {'rule':<9} {'exact':>14} {'won':>4} {'lost':>4} {'expected broken':>16}")
    for split_file, pred_file in zip(args.pairs[::2], args.pairs[1::2]):
        records = {r["id"]: r for r in load_dataset(split_file)}
        predictions = [json.loads(line) for line in open(pred_file)]
        wants = [(calls, r) for r in records.values() if (calls := expected_calls(r["messages"]))]

        def exact_match(p: dict, calls: list[dict]) -> bool:
            record = records[p["id"]]
            return judge(calls, p["parse_error"], p["expected"], record["tools"], record.get("accept")).exact_match

        before = [exact_match(p, p["calls"]) for p in predictions]
        for rule in RULES:
            after = [exact_match(p, drop_unstated(p["calls"], records[p["id"]]["tools"], request(records[p["id"]]), rule))
                     for p in predictions]
            exact = sum(after)
            won = sum(a and not b for a, b in zip(after, before))
            lost = sum(b and not a for a, b in zip(after, before))
            broken = sum(drop_unstated(calls, r["tools"], request(r), rule) != calls for calls, r in wants)
            print(f"{pred_file.rsplit('/', 1)[-1]:<34} {rule:<9} {exact / len(predictions):>6.3f} ({exact:>2}/{len(predictions):>2})"
                  f" {won:>4} {lost:>4} {broken:>9} of {len(wants):>3}")


if __name__ == "__main__":
    main()
