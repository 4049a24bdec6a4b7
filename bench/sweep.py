"""Sweep train settings (not a test, not a stage): for each config train, fuse, then greedy-evaluate
on the valid and test splits; prints one table. Runs wherever torch does (a GPU makes it minutes).

    python bench/sweep.py models/base /tmp/sweep configs.json [--splits data/splits] [--eval-batch 64]
    configs.json: [{"name": "base"}, {"name": "default"}, {"name": "ep5", "train": {"epochs": 5}},
                   {"name": "more-data", "data": "path/to/train.jsonl"}]

"train" overrides params.yaml's train block, "seed" its base.seed; "name": "base" evaluates the base model
untouched. bench/configs/starter_budget.json: the run lengths a CPU's time budget allows (2 cores of an
AMD EPYC: 54 steps at batch 16 in the 15-minute budget, ~73 at batch 8), two seeds where it matters.
Generation budget: params' evaluate.max_new_tokens.
Choose on the valid columns (or dev, where the splits folder has a dev.jsonl: bench/newdomain_splits.py
writes the new domain's); test is reported, never chosen on. Decoding is free (unconstrained) unless
`--constrained`: then each split's numbers are the constrained ones, as the evaluate stage and serve decode
by default (an output that stays inside its call grammar is kept, the others are generated again under it,
runner.constrain_predictions), with the free exact match beside them ("free_exact_match").
`--eval-batch N` generates N prompts at a time (the same greedy outputs, runner.evaluate_batched).
`--shard K/N` runs configs K, K+N, K+2N, ... only, so N processes with their own OUT folders share one
card (a 270M model leaves a GPU mostly idle per process; bench/starter_sweep_gpu.sh's SWEEP_PROCS; each
process holds 6-9 GiB at its peak, and twelve ran an 80 GB H100 out of memory).
The numbers behind the train defaults (closing notes, 2026-11-21) came from this on an H100.
"""
import argparse
import copy
import json
import time
from pathlib import Path

import torch
import yaml

from calltune.data.dataset import load_dataset
from calltune.engines.torch_engine import TorchEngine
from calltune.evaluate.metrics import aggregate
from calltune.evaluate.runner import constrain_predictions, evaluate_batched, evaluate_target
from calltune.formats import get_format
from calltune.fuse import fuse
from calltune.train.run import run_torch
from calltune.train.session import TrainPaths


def merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def evaluate(model_dir, fmt, rows, device, eval_batch, max_new_tokens, constrained=False):
    """(predictions, free predictions): the same list twice unless `constrained`."""
    engine = TorchEngine(model_dir, device=device)
    if eval_batch > 1:
        free = evaluate_batched(engine, fmt, rows, max_new_tokens=max_new_tokens, batch_size=eval_batch)
    else:
        free = evaluate_target(engine, fmt, rows, max_new_tokens=max_new_tokens, warmup=False)
    preds = (constrain_predictions(engine, fmt, rows, free, max_new_tokens=max_new_tokens, tokenizer=engine.tokenizer)
             if constrained else free)
    del engine
    return preds, free


def main(base, out, configs, splits="data/splits", eval_batch=0, params_file="params.yaml",
         score=("valid", "dev", "test"), constrained=False):
    base, out, splits = Path(base), Path(out), Path(splits)
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(Path(params_file).read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fmt = get_format("functiongemma")
    # dev: a separately written file to choose on where the valid split is a poor guide (the new domain's)
    rows = {s: load_dataset(splits / f"{s}.jsonl") for s in ("valid", "dev", "test") if s in score and (s != "dev" or
            (splits / "dev.jsonl").is_file())}
    results = []
    for cfg in configs:
        started = time.time()
        if cfg["name"] == "base":
            model_dir = base
            summary = {}
        else:  # the train stage's own code, with this config's overrides
            name = cfg["name"]
            paths = TrainPaths(train=Path(cfg.get("data", splits / "train.jsonl")), valid=splits / "valid.jsonl",
                               base=base,
                               out=out / f"adapter-{name}", checkpoints=out / f"checkpoints-{name}",
                               live=out / f"live-{name}")
            run = {**params, "train": merge(params["train"], cfg.get("train", {})),
                   "base": {**params["base"], "seed": cfg.get("seed", params["base"]["seed"])}}
            summary = run_torch(run, paths, progress=False, log=False)  # no dvclive: the results table is the record
            torch.cuda.empty_cache()
            model_dir = out / f"fused-{name}"
            fuse(base, paths.out, model_dir)
        train_s = time.time() - started
        row = {"name": cfg["name"], "train_s": round(train_s, 1), "steps": summary.get("steps"),
               "best_step": summary.get("best_step"), "best_valid_loss": summary.get("best_valid_loss"),
               "last_train_loss": summary.get("last_train_loss")}
        for split, data in rows.items():
            preds, free = evaluate(model_dir, fmt, data, device.type, eval_batch, params["evaluate"]["max_new_tokens"],
                                   constrained)
            m = aggregate(preds)
            row[split] = {k: m[k] for k in ("exact_match", "ast_accuracy", "tool_name_accuracy",
                                             "irrelevance_accuracy", "parse_valid_rate")}
            if constrained:
                row[split]["free_exact_match"] = aggregate(free)["exact_match"]
            with open(out / f"pred-{cfg['name']}-{split}.jsonl", "w") as f:
                for p in preds:
                    d = p.to_dict()
                    d.pop("prompt", None)
                    f.write(json.dumps(d) + "\n")
        row["eval_s"] = round(time.time() - started - train_s, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"{'name':<24} {'steps':>5} {'best':>5} {'vloss':>7} | "
          + " | ".join(f"{split} exact/ast/names" for split in rows))
    for r in results:
        print(f"{r['name']:<24} {r['steps'] or 0:>5} {r['best_step'] or 0:>5} {r['best_valid_loss'] or 0:>7.4f} | "
              + " | ".join(f"{r[split]['exact_match']:.3f} {r[split]['ast_accuracy']:.3f} "
                           f"{r[split]['tool_name_accuracy']:.3f}" for split in rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the base model directory (models/base)")
    parser.add_argument("out", help="where adapters, fused models, predictions and results.json go")
    parser.add_argument("configs", help="a JSON file: a list of {name, train?, data?}")
    parser.add_argument("--splits", default="data/splits", help="folder with train/valid/test.jsonl")
    parser.add_argument("--eval-batch", type=int, default=0, help="prompts generated together (0/1: one at a time)")
    parser.add_argument("--params", default="params.yaml", help="the params whose train block configs override")
    parser.add_argument("--constrained", action="store_true",
                        help="score constrained decoding (the evaluate stage's default), the free exact match beside it")
    parser.add_argument("--shard", default="0/1", help="K/N: run configs K, K+N, ... only (default all)")
    parser.add_argument("--score", default="valid,dev,test",
                        help="the splits to score, comma-separated (default all; dev where the folder has one)")
    args = parser.parse_args()
    score = tuple(args.score.split(","))
    if unknown := set(score) - {"valid", "dev", "test"}:
        parser.error(f"--score: unknown splits {sorted(unknown)} (valid, dev, test)")
    try:
        k, n = (int(x) for x in args.shard.split("/"))
    except ValueError:
        parser.error(f"--shard: {args.shard!r} is not K/N (two whole numbers)")
    if not 0 <= k < n:
        parser.error(f"--shard: K must be in 0..N-1, got {args.shard}")
    configs = json.loads(Path(args.configs).read_text())[k::n]
    main(args.base, args.out, configs, args.splits, args.eval_batch, args.params, score, args.constrained)
