"""What every training run shares, whichever backend trains: where its inputs and outputs are
(TrainPaths), the tokenized splits, the dvclive logger, the summary's data figures and the atomic
write of the trained files with their summary. run.py (torch) and mlx_backend.py build on it."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def summarise_best(live, result: dict) -> None:
    """Put the kept weights' valid loss and step in dvclive's metrics.json (beside the last step's
    values), so `dvc exp show --sort-by best_valid_loss` and `dvc metrics diff` compare what each
    experiment keeps."""
    if live is not None and result.get("best_valid_loss") is not None:
        live.summary["best_valid_loss"] = result["best_valid_loss"]
        live.summary["best_step"] = result["best_step"]


def write_outputs(out_dir: Path, save, summary: dict) -> None:
    """Write the trained files (`save(tmp_dir)` returns their names) and the summary to `out_dir`
    atomically: a run killed mid-write leaves the previous outputs, never half of new ones."""
    with atomic_path(out_dir) as tmp:
        summary["files"] = save(tmp)
        write_json(tmp / SUMMARY_FILE, summary)
