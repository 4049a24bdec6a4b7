"""Would batched generation speed up `evaluate` for the PyTorch targets on a CPU? (a benchmark, not a
test, not a stage). The evaluate stage generates one test row at a time, so its latency column means
one request; on 2 CPU cores the PyTorch targets take most of `dvc repro`'s wall time. This times
free (unconstrained) greedy decoding of the same rows one at a time and in left-padded batches
(runner.evaluate_batched) in one process, and counts the rows whose output differs.

    python bench/eval_batching.py models/fused data/splits/test.jsonl --rows 32 --batch 4 --batch 8

A reference predictions file (the evaluate stage's, `--reference predictions/tuned.jsonl`) adds
a comparison of every batched row against what the stage wrote (rows the stage regenerated under
the grammar may differ by design).
"""

from __future__ import annotations

import argparse
import json
import time

from calltune.data.dataset import load_dataset
from calltune.engines.torch_engine import TorchEngine
from calltune.evaluate.metrics import aggregate
from calltune.evaluate.predictions import read_predictions
from calltune.evaluate.runner import evaluate_batched, evaluate_target
from calltune.formats import get_format
from calltune.params import load_params
from calltune.train.device import cpu_has_bf16


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory (models/fused)")
    parser.add_argument("test", help="rows in the data contract (data/splits/test.jsonl)")
    parser.add_argument("--rows", type=int, default=0, help="the first N rows (0 = all)")
    parser.add_argument("--batch", type=int, action="append", default=[], help="batch sizes to time (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", help="the evaluate stage's predictions for the same model and rows")
    args = parser.parse_args()

    params = load_params("params.yaml")
    max_new = params["evaluate"]["max_new_tokens"]
    rows = load_dataset(args.test)
    rows = rows[: args.rows] if args.rows else rows
    fmt = get_format("functiongemma")
    engine = TorchEngine(args.model, threads=args.threads)

    started = time.perf_counter()
    single = evaluate_target(engine, fmt, rows, max_new_tokens=max_new)
    single_s = time.perf_counter() - started
    report = {"rows": len(rows), "threads": args.threads, "cpu_bf16": cpu_has_bf16(),
              "one_at_a_time": {"s": round(single_s, 1), "exact": aggregate(single)["exact_match"]}}
    print(f"one at a time: {single_s:.1f} s for {len(rows)} rows", flush=True)
    for size in args.batch:
        started = time.perf_counter()
        batched = evaluate_batched(engine, fmt, rows, max_new_tokens=max_new, batch_size=size)
        seconds = time.perf_counter() - started
        differ = [a.id for a, b in zip(single, batched) if a.raw_output != b.raw_output]
        report[f"batch_{size}"] = {"s": round(seconds, 1), "speedup": round(single_s / seconds, 2),
                                   "exact": aggregate(batched)["exact_match"], "outputs_differ": differ}
        print(f"batch {size}: {seconds:.1f} s ({single_s / seconds:.2f}x), {len(differ)} outputs differ", flush=True)
    if args.reference:
        stage = {p.id: p.raw_output for p in read_predictions(args.reference)}
        report["one_at_a_time_vs_stage_differ"] = [p.id for p in single if stage.get(p.id) != p.raw_output]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
