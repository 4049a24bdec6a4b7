"""What every training run shares, whichever backend trains: where its inputs and outputs are
(TrainPaths), the tokenizer, chat format and tokenized splits, the summary's schema (TrainingSummary)
and data figures, and the atomic write of the trained files with their summary. run.py (torch) and
mlx_backend.py build on it; what a run reports while it trains (dvclive) is callbacks.py."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from calltune.errors import InputError
from calltune.io import atomic_path, write_json

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


def load_data(params: dict, paths: TrainPaths, quiet: bool = False) -> tuple:
    """(tokenizer, chat format, train, valid, cuts): the base model's tokenizer, the format of
    model.format read from it, and the splits tokenized with both (load_splits)."""
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    tokenizer = AutoTokenizer.from_pretrained(paths.base)
    fmt = get_format(params["model"]["format"], tokenizer=tokenizer)
    train, valid, cuts = load_splits(paths, fmt, tokenizer, params["train"]["max_seq_len"], quiet=quiet)
    return tokenizer, fmt, train, valid, cuts


def load_splits(paths: TrainPaths, fmt, tokenizer, max_seq_len: int, quiet: bool = False) -> tuple[list, list, dict]:
    from calltune.train.datasets import tokenize_split

    train, train_cut = tokenize_split(paths.train, fmt, tokenizer, max_seq_len)
    if not train:
        raise InputError("no training examples", path=paths.train)
    valid, valid_cut = (tokenize_split(paths.valid, fmt, tokenizer, max_seq_len)
                        if paths.valid.is_file() else ([], None))
    cuts = {"train": train_cut.as_dict(), "valid": valid_cut.as_dict() if valid_cut else None}
    for name, report in (("train", train_cut), ("valid", valid_cut)):
        if report and (report.cut or report.dropped) and not quiet:
            warn(report.describe(name))
    return train, valid, cuts


def data_stats(examples) -> dict:
    lengths = [len(ex) for ex in examples]
    return {"examples": len(examples), "tokens": sum(lengths), "target_tokens": sum(ex.n_targets for ex in examples),
            "max_len": max(lengths, default=0), "mean_len": sum(lengths) / max(1, len(lengths))}


class TrainingSummary(TypedDict):
    """training_summary.json: the same keys, in this order, whichever backend trained (`files` is
    added by write_outputs). None where a backend cannot know a value; the mlx backend's fixed ones
    are noted. The loop's part (LOOP_KEYS, steps to history) is what trainer.Trainer.summary returns."""

    backend: str  # torch | mlx
    device: str  # torch: cpu, cuda, mps; mlx: gpu (Metal) or cpu
    dtype: str  # the weights' dtype while training (bfloat16, float32, ...)
    method: str  # train.method (mlx: lora)
    format: str  # the chat format's name (model.format resolved)
    seed: int
    compiled: bool  # torch: train.compile took (layers torch.compile'd); mlx: True (mlx-lm mx.compile's its step)
    params: dict  # the train block of params.yaml
    processes: int  # torchrun processes (mlx: 1)
    shard_optimizer: bool  # AdamW state sharded across processes (mlx: False)
    trainable_parameters: int
    data: dict  # {"train", "valid"}: session.data_stats of the tokenized splits
    cut: dict  # {"train", "valid"}: examples cut or dropped at max_seq_len (valid None without a valid split)
    steps: int  # optimizer steps done
    total_steps: int  # optimizer steps planned (length.run_length)
    epochs: float  # passes over the training data done: steps / steps_per_epoch
    steps_per_epoch: int
    planned_epochs: int
    extended_by_min_steps: bool
    eval_every: int  # optimizer steps between validation passes in this run
    packing: bool | str  # rows packed (True), padded packing ("padded") or not (False; mlx: always)
    examples_per_micro_batch: float
    stopped_early: bool  # train.patience ran out (mlx: False, patience is torch-only)
    stopped_at_budget: bool  # train.max_minutes ran out before total_steps
    max_minutes: float
    train_s: float  # the training loop's wall time (torch: across resumes)
    fitted_to_budget: bool  # train.fit_schedule made the run time-bound (mlx: False, it only stops)
    best_step: int | None  # the step of the lowest valid loss (None without validation)
    best_valid_loss: float | None
    initial_valid_loss: float | None  # the untrained model's valid loss (mlx-lm measures it; torch: None)
    first_train_loss: float | None
    last_train_loss: float | None
    tokens_per_s: float | None  # mean over the train reports
    kept: str  # the weights written: "best" (lowest valid loss) or "last" (mlx: always last)
    history: list  # the train reports, valid_loss added where one was measured (callbacks.py)
    wall_s: float  # the whole run, loading included


SUMMARY_KEYS = tuple(TrainingSummary.__annotations__)
LOOP_KEYS = SUMMARY_KEYS[SUMMARY_KEYS.index("steps"):SUMMARY_KEYS.index("history") + 1]


def training_summary(**fields) -> TrainingSummary:
    """The summary in TrainingSummary's order; every key is required, no other is allowed."""
    missing, unknown = set(SUMMARY_KEYS) - set(fields), set(fields) - set(SUMMARY_KEYS)
    if missing or unknown:
        raise ValueError(f"training summary: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {key: fields[key] for key in SUMMARY_KEYS}


def write_outputs(out_dir: Path, save, summary: dict) -> None:
    """Write the trained files (`save(tmp_dir)` returns their names) and the summary to `out_dir`
    atomically: a run killed mid-write leaves the previous outputs, never half of new ones."""
    with atomic_path(out_dir) as tmp:
        summary["files"] = save(tmp)
        write_json(tmp / SUMMARY_FILE, summary)
