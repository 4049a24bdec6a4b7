"""Queued DVC experiments of the train stage, two at a time (docs/distributed.md, "A sweep").

A minimal DVC project in tmp_path (git init + dvc init): the train stage as dvc.yaml declares it
(the same cmd flags, params, outs and dvclive metrics), on a tiny Gemma. Three grid points are
queued with `dvc exp run --queue -S train.lr=... -S train.lora.rank=...` and run with
`dvc exp run --run-all -j 2`: each runs in its own temporary workspace, two side by side; all
three must finish and show their params and metrics in `dvc exp show`.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dvc_helpers import commit_project, dvc_env, run
from train_helpers import ROOT, canonical_rows, tiny_params, write_params, write_rows

GRID = [("0.001", "2"), ("0.003", "2"), ("0.003", "4")]  # (train.lr, train.lora.rank)

# ~60-90 s on 2 shared CPU cores (DVC sets up a workspace and starts a Python per experiment): .ci/run
# runs it with the slow suite.
pytestmark = pytest.mark.slow


def train_stage(base: Path) -> dict:
    """The train stage of dvc.yaml, pointed at a base model outside the project."""
    shipped = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]
    cmd = shipped["cmd"].replace("python stages/train.py", f"{sys.executable} {ROOT / 'stages' / 'train.py'}")
    cmd = cmd.replace("--base-model models/base", f"--base-model {base}")
    deps = ["data/splits/train.jsonl", "data/splits/valid.jsonl"]
    assert all(dep in shipped["deps"] for dep in deps) and "--base-model models/base" in shipped["cmd"]
    return {**{k: shipped[k] for k in ("params", "outs", "metrics", "plots")}, "cmd": cmd, "deps": deps}


def make_project(repo: Path, base: Path, env: dict) -> None:
    write_rows(repo / "data" / "splits" / "train.jsonl", canonical_rows(8, seed=1))
    write_rows(repo / "data" / "splits" / "valid.jsonl", canonical_rows(4, seed=2))
    write_params(repo / "params.yaml", tiny_params(max_steps=2, eval_every=2, save_every=2))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": train_stage(base)}}, sort_keys=False))
    commit_project(repo, env, "a tiny train stage")


def experiments(table: str) -> list[dict]:
    """The experiment rows of `dvc exp show --csv` (not the workspace or baseline rows)."""
    return [row for row in csv.DictReader(io.StringIO(table)) if row["Experiment"]]


def test_three_queued_experiments_run_two_at_a_time_and_show_their_metrics(tmp_path, tiny_gemma_dir):
    repo, env = tmp_path / "project", dvc_env(tmp_path)
    repo.mkdir()
    make_project(repo, tiny_gemma_dir, env)
    for lr, rank in GRID:
        run(repo, env, "dvc", "exp", "run", "--queue", "-q", "-S", f"train.lr={lr}", "-S", f"train.lora.rank={rank}")
    assert run(repo, env, "dvc", "queue", "status").count("Queued") == 3
    try:
        run(repo, env, "dvc", "exp", "run", "--run-all", "-j", "2", timeout=400)
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, env=env, capture_output=True, timeout=60)

    rows = experiments(run(repo, env, "dvc", "exp", "show", "--csv"))
    assert len(rows) == 3, rows
    assert sorted((row["train.lr"], row["train.lora.rank"]) for row in rows) == sorted(GRID)
    for row in rows:
        assert row["State"] == "Success", row
        assert float(row["step"]) == 2 and float(row["train.loss"]) > 0
        assert float(row["best_valid_loss"]) > 0 and float(row["best_step"]) == 2  # what keep-best kept
    assert len({row["best_valid_loss"] for row in rows}) == 3  # three different runs, not one shared output
    assert not (repo / "models").exists()  # each ran in its own temporary workspace, not in the project
