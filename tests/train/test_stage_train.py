"""stages/train.py end to end on tiny models: outputs, dvclive logs, and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from calltune.errors import InputError
from calltune.train.run import run_training
from calltune.train.session import SUMMARY_FILE, TrainPaths
from stage_helpers import stage_main
from train_helpers import ROOT, tiny_params, write_params


def stage_args(tmp_path: Path, params: dict, train: Path, valid: Path, base: Path) -> list[str]:
    return ["--params", str(write_params(tmp_path / "p.yaml", params)), "--train", str(train), "--valid", str(valid),
            "--base-model", str(base), "--out", str(tmp_path / "adapter"), "--checkpoints", str(tmp_path / "ckpt"),
            "--live", str(tmp_path / "live"), "--no-progress"]


def stage(tmp_path: Path, params: dict, train: Path, valid: Path, base: Path) -> subprocess.CompletedProcess:
    """The real script in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(ROOT / "stages" / "train.py"), *stage_args(tmp_path, params, train, valid, base)]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def stage_in_process(tmp_path: Path, params: dict, train: Path, valid: Path, base: Path):
    """The same click command, invoked in this process (fast failure-path checks)."""
    from click.testing import CliRunner

    return CliRunner().invoke(stage_main("train"), stage_args(tmp_path, params, train, valid, base))


def paths(tmp_path: Path, splits, base: Path) -> TrainPaths:
    return TrainPaths(train=splits[0], valid=splits[1], base=base, out=tmp_path / "adapter",
                      checkpoints=tmp_path / "ckpt", live=tmp_path / "live")


def test_stage_writes_adapter_summary_checkpoints_and_live_plots(tmp_path, splits, tiny_gemma_dir):
    done = stage(tmp_path, tiny_params(), *splits, tiny_gemma_dir)
    assert done.returncode == 0, done.stderr
    assert "trained 8 steps" in done.stdout
    out = tmp_path / "adapter"
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", SUMMARY_FILE]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["method"] == "lora" and summary["format"] == "functiongemma" and summary["steps"] == 8
    assert summary["data"]["train"]["examples"] == 16 and summary["cut"]["train"]["cut"] == []
    assert summary["best_step"] is not None and len(summary["history"]) == 8
    assert all(k.startswith("base_model.model.") for k in load_file(out / "adapter_model.safetensors"))
    metrics = tmp_path / "live" / "plots" / "metrics"
    for name in ("train/loss.tsv", "valid/loss.tsv", "lr.tsv", "tokens_per_s.tsv"):
        assert len((metrics / name).read_text().splitlines()) > 1, name
    assert len((metrics / "train/loss.tsv").read_text().splitlines()) == 9  # header + one row per step
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step-0000008"]


def test_malformed_line_fails_cleanly_without_outputs(tmp_path, splits, tiny_gemma_dir):
    train, valid = splits
    lines = train.read_text().splitlines()
    lines[2] = lines[2][:-5]
    train.write_text("\n".join(lines) + "\n")
    done = stage_in_process(tmp_path, tiny_params(), train, valid, tiny_gemma_dir)
    assert done.exit_code == 2
    assert f"{train}:3" in done.output and "invalid JSON" in done.output
    assert not (tmp_path / "adapter").exists()


def test_bad_target_module_fails_cleanly(tmp_path, splits, tiny_gemma_dir):
    params = tiny_params()
    params["train"]["lora"]["target_modules"] = ["qkv"]
    done = stage_in_process(tmp_path, params, *splits, tiny_gemma_dir)
    assert done.exit_code == 2 and "train.lora.target_modules" in done.output and "q_proj" in done.output
    assert not (tmp_path / "adapter").exists()


def test_a_warm_start_continues_from_the_adapter_it_names(tmp_path, splits, tiny_gemma_dir):
    first = run_training(tiny_params(), paths(tmp_path / "a", splits, tiny_gemma_dir), progress=False)
    fresh = run_training(tiny_params(max_steps=2), paths(tmp_path / "b", splits, tiny_gemma_dir), progress=False)
    warm_params = tiny_params(max_steps=2, init_adapter=str(tmp_path / "a/adapter"))
    warm = run_training(warm_params, paths(tmp_path / "c", splits, tiny_gemma_dir), progress=False)
    loss = {name: [r["valid_loss"] for r in s["history"] if "valid_loss" in r]
            for name, s in (("first", first), ("fresh", fresh), ("warm", warm))}
    # two more steps from the first run's adapter go below where it ended, far below a fresh start's two steps
    assert loss["warm"][0] < loss["first"][-1] < loss["fresh"][0]
    from calltune.train.run import fingerprint

    before = fingerprint(warm_params, paths(tmp_path / "c", splits, tiny_gemma_dir))
    weights = tmp_path / "a/adapter/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")
    assert fingerprint(warm_params, paths(tmp_path / "c", splits, tiny_gemma_dir)) != before  # resume checks it


def test_a_warm_start_from_a_missing_adapter_fails_cleanly(tmp_path, splits, tiny_gemma_dir):
    done = stage_in_process(tmp_path, tiny_params(init_adapter=str(tmp_path / "nowhere")), *splits, tiny_gemma_dir)
    assert done.exit_code == 2 and "train.init_adapter" in done.output and "nowhere" in done.output
    assert not (tmp_path / "adapter").exists()


def test_unknown_train_param_is_rejected(tmp_path, splits, tiny_gemma_dir):
    params = tiny_params()
    params["train"]["learning_rate"] = 1e-3
    done = stage_in_process(tmp_path, params, *splits, tiny_gemma_dir)
    assert done.exit_code == 2 and "train.learning_rate" in done.output and "unknown key" in done.output


def test_a_soup_is_reported_run_by_run(tmp_path, splits, tiny_gemma_dir):
    done = stage_in_process(tmp_path, tiny_params(soup=2, max_steps=2), *splits, tiny_gemma_dir)
    assert done.exit_code == 0, done.output
    assert "trained a soup of 2 runs (seeds [1234, 1235]" in done.output
    assert done.output.count("2 steps (seed ") == 2 and "their mean as one adapter" in done.output
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 8


@pytest.mark.parametrize("soup", [0, 17, 1.5])
def test_a_bad_soup_size_is_rejected(tmp_path, splits, tiny_gemma_dir, soup):
    done = stage_in_process(tmp_path, tiny_params(soup=soup), *splits, tiny_gemma_dir)
    assert done.exit_code == 2 and "train.soup" in done.output
    assert not (tmp_path / "adapter").exists()


def test_cut_examples_are_reported(tmp_path, splits, tiny_gemma_dir, capsys):
    summary = run_training(tiny_params(max_seq_len=330, max_steps=1), paths(tmp_path, splits, tiny_gemma_dir),
                           progress=False)
    assert "longer than max_seq_len=330" in capsys.readouterr().err
    assert summary["cut"]["train"]["cut"] and summary["data"]["train"]["max_len"] <= 330


def test_no_training_examples_is_an_error(tmp_path, splits, tiny_gemma_dir):
    splits[0].write_text("")
    with pytest.raises(InputError) as err:
        run_training(tiny_params(), paths(tmp_path, splits, tiny_gemma_dir), progress=False)
    assert err.value.path == str(splits[0])


def test_full_fine_tuning_writes_a_loadable_model(tmp_path, splits, tiny_gemma_dir):
    summary = run_training(tiny_params(method="full", max_steps=2, lr=1e-4), paths(tmp_path, splits, tiny_gemma_dir),
                           progress=False)
    assert "model.safetensors" in summary["files"] and "config.json" in summary["files"]
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir)
    assert not torch.equal(trained.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_generic_format_on_llama(tmp_path, splits, tiny_llama_dir):
    summary = run_training(tiny_params(max_steps=2, method="dora"), paths(tmp_path, splits, tiny_llama_dir),
                           progress=False)
    assert summary["format"] == "generic" and summary["method"] == "dora" and summary["steps"] == 2
    assert any("lora_magnitude_vector" in k for k in load_file(tmp_path / "adapter" / "adapter_model.safetensors"))


def test_a_time_budget_stop_is_reported(tmp_path, splits, tiny_gemma_dir):
    done = stage_in_process(tmp_path, tiny_params(max_minutes=1e-6), *splits, tiny_gemma_dir)
    assert done.exit_code == 0, done.output
    assert "stopped at the time budget (train.max_minutes=1e-06) after 1 of 8 planned steps" in done.output
    summary = json.loads((tmp_path / "adapter" / SUMMARY_FILE).read_text())
    assert summary["stopped_at_budget"] and summary["steps"] == 1 and summary["kept"] == "best"
    assert summary["packing"] is False  # packing: auto, and these rows share one tool list
