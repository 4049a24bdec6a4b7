"""stages/train.py under `torchrun --nproc_per_node 2` on CPU (gloo), against one process.

Same params, so the same global batch (batch_size x grad_accum): the two processes must produce the
losses and the adapter of one process, and a checkpoint two processes wrote must resume in one
process exactly. grad_accum 3 with 2 processes also covers uneven shares (2 + 1 micro-batches) and
steps where one process has none; dropout covers the per-micro-batch RNG.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from calltune.train.run import run_training
from calltune.train.session import SUMMARY_FILE, TrainPaths
from train_helpers import ROOT, canonical_rows, tiny_params, write_params, write_rows

ADAPTER = "adapter_model.safetensors"


def params(**overrides) -> dict:
    p = tiny_params(batch_size=2, grad_accum=3, save_every=3, **overrides)  # 16 examples: 3 steps an epoch
    p["train"]["lora"]["dropout"] = 0.1
    return p


@contextlib.contextmanager
def one_thread():
    """In-process runs on one thread, like each torchrun process: on a shared 2-core machine two
    OpenMP threads in one process ran these tiny steps ~15x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_paths(root: Path, data: tuple[Path, Path], base: Path) -> TrainPaths:
    return TrainPaths(train=data[0], valid=data[1], base=base, out=root / "adapter", checkpoints=root / "ckpt",
                      live=root / "live")


def torchrun(root: Path, p: dict, data: tuple[Path, Path], base: Path) -> subprocess.CompletedProcess:
    """The real stage script under torchrun, 2 CPU processes of one thread each."""
    root.mkdir(parents=True, exist_ok=True)
    paths = run_paths(root, data, base)
    args = ["--params", str(write_params(root / "p.yaml", p)), "--train", str(data[0]), "--valid", str(data[1]),
            "--base-model", str(base), "--out", str(paths.out), "--checkpoints", str(paths.checkpoints),
            "--live", str(paths.live), "--no-progress"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "stages" / "train.py"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("ddp-data")
    return (write_rows(tmp / "train.jsonl", canonical_rows(16, seed=1)),
            write_rows(tmp / "valid.jsonl", canonical_rows(4, seed=2)))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data, tiny_gemma_dir) -> tuple[dict, Path]:
    """The reference: the same params in one process, start to end. (summary, adapter directory)"""
    paths = run_paths(tmp_path_factory.mktemp("one"), data, tiny_gemma_dir)
    with one_thread():
        return run_training(params(), paths, progress=False), paths.out


def assert_same_history(reference: list[dict], other: list[dict], same_evals: bool = True) -> None:
    """Equal losses step by step. same_evals=False: `other` may have evaluated at more steps (a run
    stopped by its time budget evaluates where it stops)."""
    assert [r["step"] for r in other] == [r["step"] for r in reference]
    for a, b in zip(reference, other):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5, abs=1e-6), a["step"]
        assert b["lr"] == a["lr"]
        assert ("valid_loss" in a) <= ("valid_loss" in b)
        assert ("valid_loss" in a) == ("valid_loss" in b) or not same_evals
        if "valid_loss" in a:
            assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=1e-5, abs=1e-6), a["step"]


def assert_same_adapter(a: Path, b: Path) -> None:
    one, two = load_file(a / ADAPTER), load_file(b / ADAPTER)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)


def test_two_processes_train_what_one_process_trains(tmp_path, data, tiny_gemma_dir, one_process):
    reference, reference_out = one_process
    done = torchrun(tmp_path, params(), data, tiny_gemma_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 6 steps") == 1  # the main process reports, once
    assert "not a multiple of the 2 processes" in done.stderr  # grad_accum 3: one process idles a little
    two = json.loads((tmp_path / "adapter" / SUMMARY_FILE).read_text())
    assert two["processes"] == 2 and reference["processes"] == 1
    assert two["steps"] == reference["steps"] == 6
    assert_same_history(reference["history"], two["history"])
    assert two["best_step"] == reference["best_step"]
    assert_same_adapter(reference_out, tmp_path / "adapter")
    # one writer: one checkpoint, one dvclive log with a row per step
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step-0000006"]
    loss_rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert len(loss_rows) == 1 + 6
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["best_step"] == reference["best_step"]
    assert metrics["best_valid_loss"] == pytest.approx(reference["best_valid_loss"], rel=1e-5)


def test_a_two_process_checkpoint_resumes_in_one_process_exactly(tmp_path, data, tiny_gemma_dir, one_process):
    reference, reference_out = one_process
    # two processes stop at their time budget after the first step and checkpoint it
    done = torchrun(tmp_path, params(max_minutes=1e-6), data, tiny_gemma_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step-0000001"]
    # one process continues from it (max_minutes is not part of the checkpoint's fingerprint)
    with one_thread():
        resumed = run_training(params(resume=True), run_paths(tmp_path, data, tiny_gemma_dir), progress=False)
    assert resumed["processes"] == 1 and resumed["steps"] == 6
    assert "valid_loss" in resumed["history"][0]  # evaluated where the budget stopped the two processes
    assert_same_history(reference["history"], resumed["history"], same_evals=False)
    assert resumed["best_step"] == reference["best_step"]
    assert_same_adapter(reference_out, tmp_path / "adapter")


DRIVER = """
import sys
from pathlib import Path

import yaml

from calltune.train.run import run_training
from calltune.train.session import TrainPaths

params, root, train, valid, base = yaml.safe_load(Path(sys.argv[1]).read_text()), *map(Path, sys.argv[2:])
run_training(params, TrainPaths(train=train, valid=valid, base=base, out=root / "adapter",
                                checkpoints=root / "ckpt", live=root / "live"), progress=False)
"""


def torchrun_run_training(root: Path, p: dict, data: tuple[Path, Path], base: Path) -> subprocess.CompletedProcess:
    """run_training itself under torchrun (params that the shipped schema does not list yet)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "driver.py").write_text(DRIVER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(root / "driver.py"), str(write_params(root / "p.yaml", p)), str(root), str(data[0]),
               str(data[1]), str(base)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_full_fine_tuning_with_a_sharded_optimizer_resumes_in_one_process(tmp_path, data, tiny_gemma_dir):
    """train.shard_optimizer (ZeRO-1) under two processes, stopped after one step; one process
    (an unsharded AdamW) continues from that checkpoint as if it had run from the start."""
    full = dict(method="full", lr=1e-4, max_steps=3)
    with one_thread():
        straight = run_training(params(**full), run_paths(tmp_path / "one", data, tiny_gemma_dir), progress=False)
    done = torchrun_run_training(tmp_path / "two", params(**full, shard_optimizer=True, max_minutes=1e-6), data,
                                 tiny_gemma_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = json.loads((tmp_path / "two" / "adapter" / SUMMARY_FILE).read_text())
    assert stopped["processes"] == 2 and stopped["shard_optimizer"] and stopped["steps"] == 1
    with one_thread():
        resumed = run_training(params(**full, resume=True), run_paths(tmp_path / "two", data, tiny_gemma_dir),
                               progress=False)
    assert resumed["steps"] == 3 and not resumed["shard_optimizer"]
    assert_same_history(straight["history"], resumed["history"], same_evals=False)
    one, two = (load_file(tmp_path / name / "adapter" / "model.safetensors") for name in ("one", "two"))
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)


def schema_lists(key: str) -> bool:
    schema = json.loads((ROOT / "schemas" / "params.schema.json").read_text(encoding="utf-8"))
    return key in schema["properties"]["train"]["properties"]


@pytest.mark.skipif(not schema_lists("distributed"), reason="schemas/params.schema.json lacks train.distributed")
def test_train_distributed_makes_the_stage_launch_torchrun_itself(tmp_path, data, tiny_gemma_dir, one_process):
    """`python stages/train.py` (dvc.yaml's cmd, unchanged) with train.distributed: 2 runs 2 processes."""
    reference, _ = one_process
    root = tmp_path
    paths = run_paths(root, data, tiny_gemma_dir)
    args = ["--params", str(write_params(root / "p.yaml", params(distributed=2))), "--train", str(data[0]),
            "--valid", str(data[1]), "--base-model", str(tiny_gemma_dir), "--out", str(paths.out),
            "--checkpoints", str(paths.checkpoints), "--live", str(paths.live), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "train.py"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((paths.out / SUMMARY_FILE).read_text())
    assert summary["processes"] == 2
    assert_same_history(reference["history"], summary["history"])


def test_a_soup_under_torchrun_is_the_soup_of_one_process(tmp_path, data, tiny_gemma_dir):
    """train.soup: each run starts and ends its process group; the two processes' soup is one process's."""
    p = params(soup=2, max_steps=3)
    with one_thread():
        run_training(p, run_paths(tmp_path / "one", data, tiny_gemma_dir), progress=False)
    done = torchrun(tmp_path / "two", p, data, tiny_gemma_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained a soup of 2 runs") == 1  # the main process reports, once
    summary = json.loads((tmp_path / "two" / "adapter" / SUMMARY_FILE).read_text())
    assert summary["processes"] == 2 and [m["steps"] for m in summary["members"]] == [3, 3]
    assert_same_adapter(tmp_path / "one" / "adapter", tmp_path / "two" / "adapter")
