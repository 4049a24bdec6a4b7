"""Slow checks: the real default model (models/base) and torch.compile on CPU."""

from __future__ import annotations

import pytest
import torch

from calltune.train.datasets import collate, tokenize_split
from calltune.train.loss import compile_layers, completion_loss, full_logits_loss, shared_prefix_len
from train_helpers import ROOT

BASE = ROOT / "models" / "base"
SPLITS = ROOT / "data" / "splits"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    if not (BASE / "model.safetensors").is_file() or not (SPLITS / "train.jsonl").is_file():
        pytest.skip("needs models/base and data/splits (dvc repro split)")
    import yaml
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    fmt = get_format(params["model"]["format"], tokenizer=tokenizer)
    return params, tokenizer, fmt


def test_starter_splits_fit_the_default_max_seq_len(real):
    params, tokenizer, fmt = real
    for split in ("train", "valid", "test"):
        _, report = tokenize_split(SPLITS / f"{split}.jsonl", fmt, tokenizer, params["train"]["max_seq_len"])
        assert report.cut == [] and report.dropped == [], split


def test_packed_loss_equals_full_logits_loss_on_the_real_model(real):
    params, tokenizer, fmt = real
    from transformers import AutoModelForCausalLM

    examples, _ = tokenize_split(SPLITS / "train.jsonl", fmt, tokenizer, 4096)
    group = [e for e in examples if e.group == examples[0].group][:3]
    batch = collate(group, 0)
    assert shared_prefix_len(batch) > 500  # the tool declarations
    model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    with torch.no_grad():
        ours, n = completion_loss(model, batch)
        ref, m = full_logits_loss(model, batch)
    assert n == m
    assert abs(float(ours) - float(ref)) <= 1e-4 * abs(float(ref))


def test_compiled_layers_give_the_same_loss(tiny_gemma_dir):
    from transformers import AutoModelForCausalLM

    from calltune.train.datasets import Batch

    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (2, 40), generator=g)
    targets = torch.zeros_like(ids, dtype=torch.bool)
    targets[:, 30:] = True
    batch = Batch(ids, targets, torch.tensor([40, 40]))
    with torch.no_grad():
        eager = float(completion_loss(model, batch, share_prefix=False)[0])
        assert compile_layers(model) == model.config.num_hidden_layers
        compiled = float(completion_loss(model, batch, share_prefix=False)[0])
    assert compiled == pytest.approx(eager, rel=1e-4)

