"""The train stage end to end: data + base model + params -> models/adapter/ and dvclive logs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from calltune.errors import InputError
from calltune.io import atomic_path, sha256_file, write_json

SUMMARY_FILE = "training_summary.json"


@dataclass(frozen=True)
class TrainPaths:
    train: Path = Path("data/splits/train.jsonl")
    valid: Path = Path("data/splits/valid.jsonl")
    base: Path = Path("models/base")
    out: Path = Path("models/adapter")
    checkpoints: Path = Path("models/checkpoints")
    live: Path = Path("dvclive")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def fingerprint(params: dict, paths: TrainPaths) -> str:
    """What a checkpoint must match to be resumed: the train params (but resume, compile and
    max_minutes, which do not change the math: a run stopped by its time budget resumes with a
    larger one), seed, format and data."""
    train = {k: v for k, v in params["train"].items() if k not in ("resume", "compile", "max_minutes")}
    blob = json.dumps([train, params["base"]["seed"], params["model"]["format"],
                       sha256_file(paths.train), sha256_file(paths.valid) if paths.valid.is_file() else None],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_splits(paths: TrainPaths, fmt, tokenizer, max_seq_len: int) -> tuple[list, list, dict]:
    from calltune.train.datasets import load_examples

    train, train_cut = load_examples(paths.train, fmt, tokenizer, max_seq_len)
    if not train:
        raise InputError("no training examples", path=paths.train)
    valid, valid_cut = (load_examples(paths.valid, fmt, tokenizer, max_seq_len)
                        if paths.valid.is_file() else ([], None))
    cuts = {"train": train_cut.as_dict(), "valid": valid_cut.as_dict() if valid_cut else None}
    for name, report in (("train", train_cut), ("valid", valid_cut)):
        if report and (report.cut or report.dropped):
            warn(report.describe(name))
    return train, valid, cuts


def data_stats(examples) -> dict:
    lengths = [len(ex) for ex in examples]
    return {"examples": len(examples), "tokens": sum(lengths), "target_tokens": sum(ex.n_targets for ex in examples),
            "max_len": max(lengths, default=0), "mean_len": sum(lengths) / max(1, len(lengths))}


def open_live(live_dir: Path, resume: bool):
    """dvclive logger (no experiment commit, no dvc.yaml edits: the pipeline declares the plots)."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    options = {"resume": resume, "save_dvc_exp": False, "dvcyaml": None, "report": None}
    try:
        return Live(str(live_dir), **options)
    except SCMError:  # dvclive cannot read a git repo with no commit yet: log without git
        with tempfile.TemporaryDirectory() as away, contextlib.chdir(away):
            return Live(str(live_dir.resolve()), **options)


def run_training(params: dict, paths: TrainPaths = TrainPaths(), progress: bool = True) -> dict:
    """Train per params.train; write the adapter (or full model) and a summary. Returns the summary."""
    from calltune.train.device import resolve_backend

    if resolve_backend(params["train"]["backend"]) == "mlx":
        from calltune.train.mlx_backend import run_mlx

        return run_mlx(params, paths, progress=progress)
    return run_torch(params, paths, progress=progress)


def run_torch(params: dict, paths: TrainPaths, progress: bool = True, log: bool = True) -> dict:
    """`log`: dvclive logging (False where dvclive is not installed, e.g. a bare GPU machine)."""
    import torch
    from transformers import AutoTokenizer

    from calltune.formats import get_format
    from calltune.train.device import resolve_device, resolve_dtype, seed_everything, use_compile
    from calltune.train.lora import load_base_model, make_trainable, save_trained
    from calltune.train.loss import compile_layers
    from calltune.train.trainer import Trainer, TrainConfig

    tp, seed = params["train"], params["base"]["seed"]
    started = time.perf_counter()
    device = resolve_device(tp["device"])
    dtype = resolve_dtype(tp["dtype"], device)
    seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(paths.base)
    fmt = get_format(params["model"]["format"], tokenizer=tokenizer)
    train, valid, cuts = load_splits(paths, fmt, tokenizer, tp["max_seq_len"])
    model = load_base_model(paths.base, tp["method"], dtype, device)
    model = make_trainable(model, tp["method"], tp["lora"], tp["gradient_checkpointing"])
    compiled = use_compile(tp["compile"], device) and compile_layers(model) > 0
    if not tp["resume"]:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with open_live(paths.live, tp["resume"]) if log else contextlib.nullcontext() as live:
        trainer = Trainer(model, train, valid, TrainConfig.from_params(tp, seed), device, pad_id,
                          autocast=dtype if tp["method"] == "full" and dtype != torch.float32 else None,
                          checkpoint_dir=paths.checkpoints, fingerprint=fingerprint(params, paths),
                          live=live, progress=progress)
        result = trainer.fit()
    summary = {
        "backend": "torch", "device": device.type, "dtype": str(dtype).removeprefix("torch."),
        "method": tp["method"], "format": fmt.name, "seed": seed, "compiled": compiled, "params": tp,
        "trainable_parameters": sum(p.numel() for p in trainer.params),
        "data": {"train": data_stats(train), "valid": data_stats(valid)}, "cut": cuts,
        **result, "wall_s": round(time.perf_counter() - started, 1),
    }
    with atomic_path(paths.out) as tmp:
        summary["files"] = save_trained(model, tmp, tp["method"])
        write_json(tmp / SUMMARY_FILE, summary)
    return summary
