"""Train the tool-calling foundation on a bare GPU machine (no calltune install, no DVC, no dvclive):
the same library calls as foundation/dvc.yaml's stages, driven from one script.

    python bench/foundation_gpu.py base --gguf gemma.gguf             # foundation/models/base
    python bench/foundation_gpu.py corpus                              # foundation/data/{train,valid}.jsonl
    python bench/foundation_gpu.py sweep --config r64-lr5e-4:rank=64,lr=5e-4 --config ...
    python bench/foundation_gpu.py final                               # best sweep run -> foundation/adapter (ship it: copy to calltune/foundation/weights),
                                                                       #   = ship (the adapter) + score (fused model, BFCL)
                                                                       #   fused model, BFCL scores

`sweep` trains each config with calltune's trainer (params from foundation/params.yaml, the
config's keys overriding train.*) and ranks them by their best loss on the corpus's valid slice,
never on held-out BFCL data. `final` takes the best run's adapter as the foundation.
On a machine with calltune installed, `cd foundation && dvc repro` runs the same steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calltune.io import read_json, write_json, write_jsonl  # noqa: E402
from calltune.params import load_params  # noqa: E402

WORK = ROOT / "foundation"


def base(args, params):
    """The GGUF dequantized into WORK/models/base (or --out); --foundation merges an adapter into it,
    as the main pipeline's base stage does (the starter and new-domain checks train on that)."""
    from calltune.base_model import resolve_base

    started = time.perf_counter()
    out = Path(args.out) if args.out else WORK / "models/base"
    record = resolve_base(args.gguf, out, dtype=params["model"]["dtype"],
                          foundation=Path(args.foundation) if args.foundation else None)
    merged = f", foundation {record['foundation']['sha256'][:12]}" if "foundation" in record else ""
    print(f"base: {record['sha256'][:16]}{merged} in {time.perf_counter() - started:.0f}s -> {out}", flush=True)


def corpus(args, params):
    from calltune.foundation.corpus import build_corpus

    built = build_corpus(params["corpus"], params["base"]["seed"])
    write_jsonl(WORK / "data/train.jsonl", built.train)
    write_jsonl(WORK / "data/valid.jsonl", built.valid)
    write_json(WORK / "metrics/corpus.json", built.report)
    print(f"corpus: {len(built.train)} train, {len(built.valid)} valid, kinds {built.report['kinds']}", flush=True)


def parse_config(text: str) -> tuple[str, dict]:
    """'name:rank=64,lr=5e-4,epochs=2' -> (name, overrides of train.*; rank/alpha go to train.lora)."""
    name, _, body = text.partition(":")
    pairs = (item.partition("=") for item in body.split(",") if item)
    return name, {key: _value(value) for key, _, value in pairs}


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def with_overrides(params: dict, overrides: dict) -> dict:
    params = copy.deepcopy(params)
    for key, value in overrides.items():
        if key in ("rank", "alpha", "dropout"):
            params["train"]["lora"][key] = value
        else:
            params["train"][key] = value
    return params


def sweep(args, params):
    """Train each config; with several configs, in parallel processes on the one GPU (a 270M model
    leaves most of an H200 idle, so three runs side by side cost little more than one)."""
    if len(args.config) > 1:
        procs = [subprocess.Popen([sys.executable, __file__, "sweep", "--params", args.params, "--config", text,
                                   "--work", str(WORK)],
                                  stdout=open(WORK / f"runs/{parse_config(text)[0]}.log", "w"),
                                  stderr=subprocess.STDOUT) for text in args.config if _mkdir(WORK / "runs")]
        codes = [p.wait() for p in procs]
        for text, code in zip(args.config, codes):
            print(f"sweep {parse_config(text)[0]}: exit {code}", flush=True)
        return
    from calltune.train.run import run_torch
    from calltune.train.session import TrainPaths

    name, overrides = parse_config(args.config[0])
    overrides = fit_memory(overrides, _gpu_gib(), params["train"]["batch_size"])
    run = WORK / "runs" / name
    paths = TrainPaths(train=WORK / "data/train.jsonl", valid=WORK / "data/valid.jsonl", base=WORK / "models/base",
                       out=run / "adapter", checkpoints=run / "checkpoints", live=run / "live")
    summary = run_torch(with_overrides(params, overrides), paths, progress=True, log=False)  # the bar shows in its log
    result = {"overrides": overrides, "best_valid_loss": summary["best_valid_loss"], "best_step": summary["best_step"],
              "steps": summary["steps"], "tokens_per_s": summary["tokens_per_s"], "wall_s": summary["wall_s"],
              "curve": [(r["step"], round(r["valid_loss"], 4)) for r in summary["history"] if "valid_loss" in r]}
    write_json(run / "result.json", result)
    print(f"sweep {name}: best valid loss {summary['best_valid_loss']:.4f} at step {summary['best_step']}"
          f"/{summary['steps']}, {summary['tokens_per_s']:.0f} tok/s, {summary['wall_s']:.0f}s", flush=True)


def fit_memory(overrides: dict, gpu_gib: float | None, batch_size: int) -> dict:
    """The corpus's micro-batch (16 rows of up to 6,144 tokens, padded) needs more memory than an
    80 GB H100 has (it ran out there, 2026-12-06; ~49 GB at 8 rows): on a card under 100 GiB, half
    the rows and twice the accumulation, so the optimizer steps stay the same. A config that names
    batch_size or grad_accum is left as it is."""
    if gpu_gib is None or gpu_gib >= 100 or {"batch_size", "grad_accum"} & overrides.keys():
        return overrides
    print(f"sweep: {gpu_gib:.0f} GiB GPU: batch_size {batch_size // 2} x grad_accum 2 (same steps)", flush=True)
    return {**overrides, "batch_size": batch_size // 2, "grad_accum": 2}


def _gpu_gib() -> float | None:
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None


def _mkdir(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return True


def sweep_results() -> dict:
    return {p.parent.name: read_json(p) for p in sorted((WORK / "runs").glob("*/result.json"))}


def ship(args, params):
    """The best sweep run's adapter as the foundation/adapter the base stage merges (bf16, stamped)."""
    from calltune.foundation.adapter import shrink_to_bf16, stamp

    results = sweep_results()
    best = min(results, key=lambda n: results[n]["best_valid_loss"])
    print(f"ship: {best} (best valid loss {results[best]['best_valid_loss']:.4f})", flush=True)
    adapter = WORK / "adapter"
    shutil.rmtree(adapter, ignore_errors=True)
    shutil.copytree(WORK / "runs" / best / "adapter", adapter)
    shrink_to_bf16(adapter / "adapter_model.safetensors")
    stamp(WORK / "models/base", adapter)
    write_json(adapter / "sweep.json", {"chosen": best, "by": "best loss on the corpus's valid slice",
                                        "runs": results})


def score(args, params):
    """foundation/adapter fused into the base, then held-out BFCL on it."""
    from calltune.fuse import fuse

    fuse(WORK / "models/base", WORK / "adapter", WORK / "models/fused", dtype=params["fuse"]["dtype"])
    bfcl = params["bfcl"]
    cmd = [sys.executable, "-m", "calltune.evaluate.bfcl", str(WORK / "models/fused"),
           "--out", str(WORK / "metrics/bfcl.json"), "--predictions", str(WORK / "predictions/bfcl.jsonl"),
           "--max-new-tokens", str(bfcl["max_new_tokens"]), "--batch-size", str(bfcl["batch_size"]),
           "--categories", ",".join(bfcl["categories"]), "--constrained"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def final(args, params):
    ship(args, params)
    score(args, params)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["base", "corpus", "sweep", "ship", "score", "final"])
    parser.add_argument("--params", default=str(WORK / "params.yaml"))
    parser.add_argument("--gguf", help="the embedded Gemma 3 270M GGUF (base step)")
    parser.add_argument("--out", help="base: the model directory (default WORK/models/base)")
    parser.add_argument("--foundation", help="base: a foundation adapter directory to merge (default none)")
    parser.add_argument("--config", action="append", default=[], help="sweep: name:key=value,... (repeatable)")
    parser.add_argument("--limit", type=int, default=0, help="score/final: BFCL items per category (0 = all)")
    parser.add_argument("--work", default=str(WORK), help="where models/, data/, runs/ go (default foundation/)")
    args = parser.parse_args()
    globals()["WORK"] = Path(args.work).resolve()
    params = load_params(args.params)
    {"base": base, "corpus": corpus, "sweep": sweep, "ship": ship, "score": score, "final": final}[args.step](args, params)


if __name__ == "__main__":
    main()
