"""Kill safety: `dvc repro` killed mid-train and mid-export, then run again, ends with outputs equal
to an uninterrupted run's, and DVC sees nothing stale.

A minimal DVC project in tmp_path holds the train, fuse and export stages as dvc.yaml declares them
(their cmd flags, params, outs, metrics), on the tiny Gemma, with only the data and the upstream
outputs as deps. One project runs straight through; the other is SIGKILLed (the whole process
group, as a crash or a pulled plug would) once train has written a checkpoint, run again and
SIGKILLed while export writes its ONNX folder (the temporary sibling that calltune.io.atomic_path
renames into place), then run to the end. Every model file must be byte-equal to the straight
run's. ~2-3 min on 2 CPU cores: .ci/run runs it with the slow suite.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
from dvc_helpers import commit_project, dvc_env, run  # noqa: E402
from train_helpers import ROOT, canonical_rows, tiny_params, write_params, write_rows  # noqa: E402

pytestmark = pytest.mark.slow

MODEL_FILES = ("*.safetensors", "*.onnx", "*.gguf", "tokenizer.json", "config.json")


def stages(base: Path) -> dict:
    """train, fuse and export of the shipped dvc.yaml: scripts by absolute path, the base model outside
    the project, deps reduced to the data files and the upstream stages' outputs."""
    shipped = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    deps = {"train": ["data/splits/train.jsonl", "data/splits/valid.jsonl"], "fuse": ["models/adapter"],
            "export": ["models/fused", "data/splits/test.jsonl"]}
    out = {}
    for name in ("train", "fuse", "export"):
        stage = shipped[name]
        cmd = " ".join(stage["cmd"].split())
        for script in ("train", "fuse", "export"):
            cmd = cmd.replace(f"python stages/{script}.py", f"{sys.executable} {ROOT / 'stages' / f'{script}.py'}")
        assert "--base-model models/base" in cmd or name == "export"
        cmd = cmd.replace("--base-model models/base", f"--base-model {base}")
        assert all(dep in stage["deps"] for dep in deps[name])
        out[name] = {**{k: stage[k] for k in ("params", "outs", "metrics", "plots") if k in stage},
                     "cmd": cmd, "deps": deps[name]}
    return out


def make_project(repo: Path, base: Path, env: dict) -> None:
    repo.mkdir()
    write_rows(repo / "data" / "splits" / "train.jsonl", canonical_rows(12, seed=1))
    write_rows(repo / "data" / "splits" / "valid.jsonl", canonical_rows(4, seed=2))
    write_rows(repo / "data" / "splits" / "test.jsonl", canonical_rows(4, seed=3))
    params = tiny_params(epochs=2, eval_every=2, save_every=1)
    params["export"].update({"onnx": True, "gguf": ["f16"], "check_examples": 2})
    write_params(repo / "params.yaml", params)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages(base)}, sort_keys=False))
    commit_project(repo, env, "train, fuse, export")


def model_files(repo: Path) -> dict[str, str]:
    """sha256 of every model file the three stages wrote (not metrics: they hold timings)."""
    found = {}
    for pattern in MODEL_FILES:
        for path in (repo / "models").rglob(pattern):
            if "checkpoints" not in path.parts:
                found[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def repro_killed_when(repo: Path, env: dict, ready, what: str, timeout: float = 300) -> None:
    """Start `dvc repro`, SIGKILL its whole process group as soon as `ready()` holds."""
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"dvc repro ended ({proc.returncode}) before {what}:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f}s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"dvc repro was not killed mid-{what} (exit {proc.returncode})"


def test_repro_killed_mid_train_and_mid_export_then_rerun_equals_a_straight_run(tmp_path, tiny_gemma_dir):
    env = dvc_env(tmp_path)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    make_project(straight, tiny_gemma_dir, env)
    make_project(killed, tiny_gemma_dir, env)
    run(straight, env, "dvc", "repro", timeout=600)
    expected = model_files(straight)
    assert {Path(p).parts[1] for p in expected} == {"adapter", "fused", "onnx", "gguf"}

    checkpoints = killed / "models" / "checkpoints"
    repro_killed_when(killed, env, lambda: checkpoints.is_dir() and any(checkpoints.iterdir()), "training")
    assert not (killed / "models" / "adapter").exists()  # nothing half-written in the output's place
    # Mid-export: the ONNX folder is being written into atomic_path's temporary sibling.
    repro_killed_when(killed, env, lambda: any((killed / "models").glob(".onnx.*")), "export")
    assert (killed / "models" / "fused").is_dir() and not (killed / "models" / "onnx").exists()

    run(killed, env, "dvc", "repro", timeout=600)
    assert model_files(killed) == expected
    status = run(killed, env, "dvc", "status")
    assert "changed" not in status and "modified" not in status, status
