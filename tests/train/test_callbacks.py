"""The reports both backends make while training (calltune.train.callbacks) and the one summary
schema they write (session.TrainingSummary)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from calltune.formats import get_format
from calltune.train.callbacks import LiveLogger
from calltune.train.datasets import tokenize_split
from calltune.train.device import seed_everything
from calltune.train.lora import load_base_model, make_trainable
from calltune.train.session import LOOP_KEYS, SUMMARY_KEYS, training_summary
from calltune.train.trainer import Trainer, TrainConfig
from train_helpers import canonical_rows, write_rows


class Recorder:
    def __init__(self):
        self.calls = []

    def on_train_loss_report(self, info):
        self.calls.append(("train", info))

    def on_val_loss_report(self, info):
        self.calls.append(("val", info))

    def on_train_end(self, summary):
        self.calls.append(("end", summary))


class FakeLive:
    def __init__(self):
        self.step, self.logged, self.syncs, self.summary = None, [], 0, {}

    def log_metric(self, name, value):
        self.logged.append((self.step, name, value))

    def sync(self):
        self.syncs += 1


def test_torch_trainer_reports_each_step_then_its_validation(tiny_gemma_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    fmt = get_format("functiongemma")
    train, _ = tokenize_split(write_rows(tmp_path / "t.jsonl", canonical_rows(8, seed=1)), fmt, tokenizer, 1024)
    valid, _ = tokenize_split(write_rows(tmp_path / "v.jsonl", canonical_rows(2, seed=2)), fmt, tokenizer, 1024)
    seed_everything(3)
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, torch.device("cpu")), "lora",
                           {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]})
    recorder = Recorder()
    trainer = Trainer(model, train, valid, TrainConfig(epochs=1, batch_size=4, eval_every=2, warmup_steps=1),
                      torch.device("cpu"), 0, callbacks=[recorder], progress=False)
    summary = trainer.fit()
    assert tuple(summary) == LOOP_KEYS and summary["initial_valid_loss"] is None
    kinds = [(kind, info.get("step")) for kind, info in recorder.calls]
    assert kinds == [("train", 1), ("train", 2), ("val", 2), ("end", None)]
    history = summary["history"]
    assert recorder.calls[0][1] == history[0] and recorder.calls[2][1] == {"step": 2,
                                                                          "valid_loss": history[1]["valid_loss"]}
    assert "valid_loss" not in recorder.calls[1][1] and recorder.calls[3][1] is summary


def test_live_logger_writes_each_report_at_its_step_under_the_plotted_names():
    live = FakeLive()
    logger = LiveLogger(live)
    logger.on_train_loss_report({"step": 3, "train_loss": 0.5, "lr": 1e-3, "tokens_per_s": 10.0, "grad_norm": 2.0})
    logger.on_val_loss_report({"step": 3, "valid_loss": 0.4})
    logger.on_train_end({"best_valid_loss": 0.4, "best_step": 3})
    assert live.logged == [(3, "train/loss", 0.5), (3, "lr", 1e-3), (3, "tokens_per_s", 10.0),
                           (3, "grad_norm", 2.0), (3, "valid/loss", 0.4)]
    assert live.syncs == 2 and live.summary == {"best_valid_loss": 0.4, "best_step": 3}
    logger.on_train_end({"best_valid_loss": None, "best_step": None})  # no validation: nothing added
    assert live.summary == {"best_valid_loss": 0.4, "best_step": 3}


def test_mlx_reports_become_the_torch_form():
    from calltune.train.length import run_length
    from calltune.train.mlx_backend import MlxReports

    recorder = Recorder()
    reports = MlxReports([recorder], grad_accum=2)
    reports.on_val_loss_report({"iteration": 0, "val_loss": 2.0, "val_time": 0.1})  # the untrained model
    for it in range(1, 5):
        if it == 4:
            reports.on_val_loss_report({"iteration": 3, "val_loss": 1.5, "val_time": 0.1})
        reports.on_train_loss_report({"iteration": it, "train_loss": 3.0 - it / 10, "learning_rate": 1e-3,
                                      "tokens_per_second": 100.0 * it})
    assert [r["step"] for r in reports.history] == [1, 1, 2, 2]
    assert reports.history[2] == {"step": 2, "train_loss": 2.7, "lr": 1e-3, "tokens_per_s": 300.0, "valid_loss": 1.5}
    assert [kind for kind, _ in recorder.calls] == ["train", "train", "train", "val", "train"]
    loop = reports.loop_summary(run_length(2, 1, 0, 0, 2), examples=8, batches=4, grad_accum=2, max_minutes=0,
                                stopped_at_budget=False, train_s=1.23)
    assert tuple(loop) == LOOP_KEYS
    assert loop["initial_valid_loss"] == 2.0 and loop["best_valid_loss"] == 1.5 and loop["best_step"] == 2
    assert loop["steps"] == 2 and loop["epochs"] == 1 and loop["tokens_per_s"] == 250.0 and loop["train_s"] == 1.2


def test_the_summary_has_every_key_and_no_other():
    fields = dict.fromkeys(SUMMARY_KEYS, None)
    assert tuple(training_summary(**fields)) == SUMMARY_KEYS
    with pytest.raises(ValueError, match="wall_s"):
        training_summary(**{k: v for k, v in fields.items() if k != "wall_s"})
    with pytest.raises(ValueError, match="extra"):
        training_summary(**fields, extra=1)
