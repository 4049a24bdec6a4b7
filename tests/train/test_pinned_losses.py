"""Pinned first losses of the tiny Gemma (torchtune-style): a change to tokenization, the chat
format's rendering, the completion mask, the loss or the LoRA wiring moves these numbers, so it
cannot pass silently. The data is fixed (train_helpers.canonical_rows), the model is the seeded
random tiny Gemma, fp32 on CPU. The token and target counts must match exactly; the losses within
1e-4 relative, far above the float differences between CPUs (AVX2 and AVX-512 kernels sum in
different orders; fp32 rounding is ~1e-7 relative) and below what a change to the rows, the mask
or the weighting does to a mean over 165 targets.

If a change is meant to move them, print the new values with
    python -m pytest tests/train/test_pinned_losses.py -s
and update PINNED in the same commit, saying why."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from calltune.formats import get_format
from calltune.train.datasets import tokenize_split
from calltune.train.device import seed_everything
from calltune.train.lora import load_base_model, make_trainable
from calltune.train.trainer import Trainer, TrainConfig
from train_helpers import canonical_rows, write_rows

CPU = torch.device("cpu")
LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["all-linear"]}

# Tokens and target (loss) tokens of the 8 training and 4 validation rows, the loss of the base on
# the validation rows, then the training loss of each of the first 4 optimizer steps (batch 2,
# lr 5e-3, no warm-up) and the validation loss after them.
PINNED = {
    "train_tokens": 2756,
    "train_targets": 165,
    "valid_targets": 81,
    "valid_loss_before": 6.9536688533830056,
    "train_losses": [6.942583238756335, 6.795220008263221, 6.947533501519097, 6.727312469482422],
    "valid_loss_after": 6.727748352804301,
}


def run(tiny_gemma_dir, tmp_path) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    fmt = get_format("functiongemma")
    train, _ = tokenize_split(write_rows(tmp_path / "train.jsonl", canonical_rows(8, seed=11)), fmt, tokenizer, 1024)
    valid, _ = tokenize_split(write_rows(tmp_path / "valid.jsonl", canonical_rows(4, seed=12)), fmt, tokenizer, 1024)
    seed_everything(3)
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    cfg = TrainConfig(lr=5e-3, warmup_steps=0, epochs=1, batch_size=2, grad_accum=1, eval_every=100,
                      save_every=100, seed=3)
    trainer = Trainer(model, train, valid, cfg, CPU, pad_id=0, checkpoint_dir=None, fingerprint="pinned",
                      progress=False)
    before = trainer.evaluate()
    summary = trainer.fit()
    return {
        "train_tokens": sum(len(ex.input_ids) for ex in train),
        "train_targets": sum(ex.n_targets for ex in train),
        "valid_targets": sum(ex.n_targets for ex in valid),
        "valid_loss_before": before,
        "train_losses": [r["train_loss"] for r in summary["history"]],
        "valid_loss_after": trainer.evaluate(),
    }


def test_first_losses_of_the_tiny_gemma_are_pinned(tiny_gemma_dir, tmp_path):
    got = run(tiny_gemma_dir, tmp_path)
    print("\nPINNED =", got)
    assert got["train_tokens"] == PINNED["train_tokens"]
    assert (got["train_targets"], got["valid_targets"]) == (PINNED["train_targets"], PINNED["valid_targets"])
    assert got["valid_loss_before"] == pytest.approx(PINNED["valid_loss_before"], rel=1e-4)
    assert got["train_losses"] == pytest.approx(PINNED["train_losses"], rel=1e-4)
    assert got["valid_loss_after"] == pytest.approx(PINNED["valid_loss_after"], rel=1e-4)
    assert got["valid_loss_after"] < got["valid_loss_before"]  # and the steps learn something
