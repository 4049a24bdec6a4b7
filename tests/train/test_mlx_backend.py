"""The MLX backend (mlx-lm's tuner) on Linux CPU: same data and mask, adapters in PEFT form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlx_lm")

import mlx.core as mx  # noqa: E402

from calltune.errors import InputError  # noqa: E402
from calltune.train.mlx_backend import OPENBLAS, MlxAverage, add_lora, check_supported, mx_lr_schedule  # noqa: E402
from calltune.train.schedule import lr_at  # noqa: E402
from train_helpers import ROOT, canonical_rows, tiny_params, write_params, write_rows  # noqa: E402


def test_mx_schedule_matches_the_torch_schedule():
    schedule = mx_lr_schedule(3e-4, 3, 25)
    for step in range(30):
        assert float(schedule(mx.array(step))) == pytest.approx(lr_at(step, 3e-4, 3, 25), rel=1e-5)


@pytest.mark.parametrize("key, value", [("method", "dora"), ("resume", True), ("patience", 2), ("device", "cuda"),
                                        ("packing", True), ("init_adapter", "models/adapter"),
                                        ("embed_noise", 0.01)])
def test_options_only_the_torch_backend_has_are_refused(key, value):
    train = tiny_params(backend="mlx", device="auto")["train"]
    train[key] = value
    with pytest.raises(InputError) as err:
        check_supported(train)
    assert err.value.field == f"train.{key}"


def test_packing_auto_is_accepted_and_min_steps_plans_like_torch():
    from calltune.train.datasets import TokenizedExample
    from calltune.train.length import run_length
    from calltune.train.mlx_backend import train_length

    train = tiny_params(backend="mlx", device="auto", packing="auto", min_steps=10, batch_size=4, epochs=2)["train"]
    check_supported(train)
    examples = [TokenizedExample(str(i), (2, 3, 4), (False, False, True), "g") for i in range(12)]
    assert train_length(examples, train, 0) == run_length(3, 2, 10, 0, train["eval_every"])
    assert train_length(examples, train, 0).total_steps == 12


def mlx_with_adapter(base: Path, adapter: Path):
    """The base loaded by mlx-lm with our PEFT-form adapter converted back onto LoRA layers."""
    from mlx_lm.utils import load_model
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    model, _ = load_model(base)
    add_lora(model, {"rank": config["r"], "alpha": config["lora_alpha"], "dropout": 0.0,
                     "target_modules": config["target_modules"]})
    weights = []
    for key, value in load_file(adapter / "adapter_model.safetensors").items():
        module = key.removeprefix("base_model.model.").rsplit(".", 2)[0]
        weights.append((f"{module}.{'lora_a' if '.lora_A.' in key else 'lora_b'}", mx.array(value.T)))
    model.load_weights(weights, strict=False)
    model.eval()
    return model


def test_mlx_trains_a_tiny_gemma_and_its_adapter_loads_in_peft(tmp_path, tiny_gemma_dir):
    train = write_rows(tmp_path / "train.jsonl", canonical_rows(8, seed=1))
    valid = write_rows(tmp_path / "valid.jsonl", canonical_rows(4, seed=2))
    params = tiny_params(backend="mlx", device="auto", dtype="auto", lr=5e-3, epochs=8, eval_every=100)
    params["train"]["lora"]["target_modules"] = ["all-linear"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if Path(OPENBLAS).exists():  # mlx[cpu]'s bundled BLAS is ~25x slower
        env["LD_PRELOAD"] = OPENBLAS
    args = [sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(write_params(tmp_path / "p.yaml", params)),
            "--train", str(train), "--valid", str(valid), "--base-model", str(tiny_gemma_dir), "--out", "adapter",
            "--checkpoints", "ckpt", "--live", "live", "--no-progress"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "adapter" / "training_summary.json").read_text())
    assert summary["backend"] == "mlx" and summary["dtype"] == "float32" and summary["steps"] == 16
    assert summary["best_valid_loss"] < summary["initial_valid_loss"] - 0.1, json.dumps(summary["history"])
    assert (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").is_file()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32).eval()
    ids = [[2, 105, 300, 400, 500, 600, 106, 10, 20, 30]]
    with torch.no_grad():
        before = base(torch.tensor(ids)).logits.numpy()
        peft = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
        after = peft(torch.tensor(ids)).logits.numpy()
    ours = np.array(mlx_with_adapter(tiny_gemma_dir, tmp_path / "adapter")(mx.array(ids)))
    assert np.abs(after - before).max() > 1e-2  # the adapter changes the model...
    assert np.abs(after - ours).max() < 1e-4  # ...identically in PyTorch + PEFT and in MLX


def test_mlx_stops_at_the_time_budget(tmp_path, tiny_gemma_dir):
    from calltune.train.run import run_training
    from calltune.train.session import TrainPaths

    paths = TrainPaths(train=write_rows(tmp_path / "train.jsonl", canonical_rows(8, seed=1)),
                       valid=write_rows(tmp_path / "valid.jsonl", canonical_rows(2, seed=2)), base=tiny_gemma_dir,
                       out=tmp_path / "adapter", checkpoints=tmp_path / "ckpt", live=tmp_path / "live")
    params = tiny_params(backend="mlx", device="auto", dtype="auto", epochs=3, max_minutes=1e-6)
    summary = run_training(params, paths, progress=False)
    assert summary["stopped_at_budget"] and summary["steps"] == 1 and summary["total_steps"] == 6
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_mlx_average_follows_the_formula_of_the_torch_one():
    import mlx.nn as nn

    model = nn.Linear(2, 1, bias=False)
    model.weight = mx.array([[1.0, -2.0]])
    average = MlxAverage(model, 0.7)
    expected = np.array([[1.0, -2.0]])
    for value in ([[3.0, 0.0]], [[5.0, 4.0]]):
        model.weight = mx.array(value)
        average.update()
        expected = 0.7 * expected + 0.3 * np.array(value)
    assert np.allclose(np.array(model.weight), [[5.0, 4.0]])  # updating leaves the weights alone
    average.apply()
    assert np.allclose(np.array(model.weight), expected, atol=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        MlxAverage(model, 1.0)


def test_mlx_with_a_weight_average_trains_the_same_and_saves_the_average(tmp_path, tiny_gemma_dir):
    from safetensors.numpy import load_file

    from calltune.train.run import run_training
    from calltune.train.session import TrainPaths

    def run(name: str, ema: float):
        paths = TrainPaths(train=write_rows(tmp_path / "train.jsonl", canonical_rows(8, seed=1)),
                           valid=write_rows(tmp_path / "valid.jsonl", canonical_rows(2, seed=2)), base=tiny_gemma_dir,
                           out=tmp_path / f"adapter-{name}", checkpoints=tmp_path / f"ckpt-{name}",
                           live=tmp_path / f"live-{name}")
        params = tiny_params(backend="mlx", device="auto", dtype="auto", epochs=2, ema=ema)
        summary = run_training(params, paths, progress=False)
        return summary, load_file(paths.out / "adapter_model.safetensors")

    (plain, plain_weights), (averaged, averaged_weights) = run("plain", 0.0), run("averaged", 0.5)
    losses = [[r["train_loss"] for r in s["history"] if "train_loss" in r] for s in (plain, averaged)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # training never sees the average
    assert any(not np.allclose(plain_weights[k], averaged_weights[k]) for k in plain_weights)
