"""What a training run reports while it trains, the same for both backends: a callback protocol after
mlx-lm's tuner.callbacks.TrainingCallback, and the one callback the pipeline uses, which logs to dvclive.

The reports are dicts in calltune's keys, those of a history record in training_summary.json:

    on_train_loss_report({"step", "train_loss", "lr", "tokens_per_s"[, "grad_norm"]})
        after an optimizer step (torch; grad_norm when train.grad_clip > 0), or after each of its
        micro-batches (mlx: mlx-lm reports every iteration; "step" is the optimizer step it belongs to)
    on_val_loss_report({"step", "valid_loss"})
        after a validation pass, "step" the optimizer step it is logged at
    on_train_end(summary)
        once the loop is over, with the loop's part of the summary (session.LOOP_KEYS)

The torch loop (trainer.Trainer) calls them itself; on MLX, mlx_backend.MlxReports turns mlx-lm's
reports (iterations, its key names) into these. Only the main process of a torchrun run reports.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator, Protocol

# report key -> dvclive metric name: the files dvclive/plots/metrics/<name>.tsv that dvc.yaml plots
# (x: step), and the keys of dvclive/metrics.json. Metrics are logged in this order.
LIVE_NAMES = {"train_loss": "train/loss", "valid_loss": "valid/loss", "lr": "lr", "tokens_per_s": "tokens_per_s",
              "grad_norm": "grad_norm"}


class TrainingCallback(Protocol):
    def on_train_loss_report(self, info: dict) -> None: ...

    def on_val_loss_report(self, info: dict) -> None: ...

    def on_train_end(self, summary: dict) -> None: ...


class LiveLogger:
    """dvclive: each report's metrics (LIVE_NAMES) at its step, written out (sync) per report; at the
    end, the kept weights' valid loss and step in metrics.json (beside the last step's values), so
    `dvc exp show --sort-by best_valid_loss` and `dvc metrics diff` compare what each experiment keeps.
    A `scope` (a soup's member-0, member-1, ...) puts every name under it: plots/metrics/member-0/
    train/loss.tsv, metrics.json's {"member-0": {...}}, so the runs of one stage share one log."""

    def __init__(self, live, scope: str = ""):
        self.live, self.scope = live, scope

    def _log(self, info: dict) -> None:
        self.live.step = info["step"]
        for key, name in LIVE_NAMES.items():
            if key in info:
                self.live.log_metric(f"{self.scope}/{name}" if self.scope else name, info[key])
        self.live.sync()

    def on_train_loss_report(self, info: dict) -> None:
        self._log(info)

    def on_val_loss_report(self, info: dict) -> None:
        self._log(info)

    def on_train_end(self, summary: dict) -> None:
        if summary.get("best_valid_loss") is not None:
            kept = self.live.summary.setdefault(self.scope, {}) if self.scope else self.live.summary
            kept["best_valid_loss"] = summary["best_valid_loss"]
            kept["best_step"] = summary["best_step"]


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


@contextlib.contextmanager
def live_callbacks(live_dir: Path, resume: bool, enabled: bool = True) -> Iterator[list[TrainingCallback]]:
    """The run's callbacks: a LiveLogger on dvclive in `live_dir` (continuing its logs when `resume`),
    or none when not `enabled` (a process other than the main one; no dvclive installed)."""
    if not enabled:
        yield []
        return
    with open_live(live_dir, resume) as live:
        yield [LiveLogger(live)]
