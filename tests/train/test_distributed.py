"""calltune.train.distributed without processes: who runs which micro-batch, how the environment and
train.distributed decide, the torchrun command the stage launches, and gradient buckets."""

from __future__ import annotations

import sys

import pytest
import torch

from calltune.errors import InputError
from calltune.train import distributed
from calltune.train.distributed import SINGLE, Dist, buckets, launch_command, launch_env, must_launch, resolve
from calltune.train.trainer import micro_seed

TORCHRUN_2 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}


@pytest.mark.parametrize("world,items", [(1, 5), (2, 5), (2, 1), (3, 7), (4, 2)])
def test_shares_cover_a_step_exactly_once(world, items):
    step = list(range(items))
    shares = [Dist(rank, world).share(step) for rank in range(world)]
    assert sorted(i for share in shares for i in share) == step
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # round-robin: balanced by count


def test_one_process_runs_everything_and_sums_nothing():
    assert SINGLE.share([3, 1, 2]) == [3, 1, 2] and SINGLE.is_main and not SINGLE.enabled
    t = torch.ones(3)
    SINGLE.sum_tensors([t])
    SINGLE.broadcast_from_main([t])
    assert torch.equal(t, torch.ones(3)) and SINGLE.any(True, torch.device("cpu"))


def test_buckets_keep_dtype_runs_and_the_size_limit():
    a, b, c = torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.bfloat16)
    big, d = torch.zeros(10), torch.zeros(2)
    assert [[t.numel() for t in bucket] for bucket in buckets([a, b, c, big, d], limit=8)] == [[4, 4], [4], [10], [2]]
    assert [len(bucket) for bucket in buckets([a, b, d], limit=100)] == [3]


def test_the_environment_torchrun_sets_decides_by_default():
    assert resolve("auto", {}) is SINGLE and resolve(None, {}) is SINGLE
    assert resolve("auto", TORCHRUN_2) == Dist(rank=1, world_size=2, local_rank=1)
    assert resolve(2, TORCHRUN_2).world_size == 2  # inside torchrun, the environment is the truth
    assert not resolve("auto", TORCHRUN_2).is_main


def test_one_process_under_a_torchrun_of_two_is_refused():
    with pytest.raises(InputError) as err:
        resolve(1, TORCHRUN_2)
    assert err.value.field == "train.distributed"


@pytest.mark.parametrize("bad", [0, -1, True, "two", 1.5])
def test_bad_settings_name_the_key(bad):
    with pytest.raises(InputError, match="train.distributed"):
        resolve(bad, {})


def test_the_stage_launches_torchrun_only_when_asked_and_not_inside_it():
    assert must_launch(2, {}) == 2 and must_launch(4, {}) == 4
    assert must_launch(2, TORCHRUN_2) == 0 and must_launch(1, {}) == 0 and must_launch("auto", {}) == 0


def test_launch_command_is_a_standalone_torchrun_of_the_same_script():
    command = launch_command(2, "/repo/stages/train.py", ["--params", "p.yaml", "--no-progress"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and "--nproc_per_node=2" in command  # a free port: runs side by side
    assert command[-4:] == ["/repo/stages/train.py", "--params", "p.yaml", "--no-progress"]


def test_launch_env_splits_cpu_threads_unless_set(monkeypatch):
    monkeypatch.setattr(distributed.os, "cpu_count", lambda: 16)
    assert launch_env(4, {"PATH": "/bin"}) == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}
    assert launch_env(32, {})["OMP_NUM_THREADS"] == "1"
    assert launch_env(4, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_micro_seeds_differ_by_step_and_micro_batch_and_seed():
    seeds = {micro_seed(seed, step, index) for seed in (0, 1) for step in range(50) for index in range(8)}
    assert len(seeds) == 2 * 50 * 8


@pytest.mark.parametrize("setting,env", [(2, {}), ("auto", TORCHRUN_2)])
def test_the_mlx_backend_refuses_several_processes(tmp_path, setting, env, monkeypatch):
    from calltune.train.run import run_training
    from calltune.train.session import TrainPaths
    from train_helpers import tiny_params

    for key in TORCHRUN_2:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    params = tiny_params(backend="mlx")
    params["train"]["distributed"] = setting
    with pytest.raises(InputError) as err:
        run_training(params, TrainPaths(out=tmp_path / "out"), progress=False)
    assert err.value.field == "train.distributed" and "mlx" in err.value.reason
