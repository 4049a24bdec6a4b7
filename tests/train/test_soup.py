"""A soup of LoRA adapters as one adapter: fused soup == the mean of the fused members; what cannot
be souped is refused naming the member and field, and leaves nothing behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from calltune.errors import InputError
from calltune.fuse import fuse
from calltune.train.soup import soup_adapters

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from adapter_helpers import peft_adapter  # noqa: E402

# fp32: the stacked product sums the same terms as the members' products, in another order
TOLERANCE = 1e-5


def fused_weights(base, adapter, out) -> dict[str, torch.Tensor]:
    fuse(base, adapter, out)
    return load_file(out / "model.safetensors")


@pytest.mark.parametrize("n", [2, 3])
def test_fused_soup_is_the_mean_of_the_fused_members(tiny_gemma_dir, tmp_path, n):
    members = [peft_adapter(tiny_gemma_dir, tmp_path / f"a{i}", seed=i) for i in range(n)]
    config = soup_adapters(members, tmp_path / "soup")
    assert config["r"] == 4 * n and config["lora_alpha"] == 8  # rank stacked, alpha kept
    base = load_file(tiny_gemma_dir / "model.safetensors")
    fused = [fused_weights(tiny_gemma_dir, m, tmp_path / f"fused{i}") for i, m in enumerate(members)]
    soup = fused_weights(tiny_gemma_dir, tmp_path / "soup", tmp_path / "fused-soup")
    changed = 0
    for name, weight in soup.items():
        mean = sum(f[name].double() for f in fused) / n
        assert (weight.double() - mean).abs().max().item() < TOLERANCE, name
        changed += not torch.equal(weight, base[name])
    assert changed == 3 * 6  # q, v and down projections of the tiny model's 6 layers moved
    # the members differ, so the soup is none of them
    assert all((soup[k] - f[k]).abs().max() > 100 * TOLERANCE for f in fused for k in soup if "q_proj" in k)


def test_soup_of_one_adapter_is_refused(tiny_gemma_dir, tmp_path):
    with pytest.raises(InputError, match="at least two"):
        soup_adapters([peft_adapter(tiny_gemma_dir, tmp_path / "a")], tmp_path / "soup")


def test_dora_is_refused(tiny_gemma_dir, tmp_path):
    members = [peft_adapter(tiny_gemma_dir, tmp_path / f"a{i}", dora=True, seed=i) for i in range(2)]
    with pytest.raises(InputError, match="DoRA") as e:
        soup_adapters(members, tmp_path / "soup")
    assert e.value.field == "use_dora"
    assert not (tmp_path / "soup").exists()


def test_members_of_other_ranks_are_refused_naming_the_member(tiny_gemma_dir, tmp_path):
    a = peft_adapter(tiny_gemma_dir, tmp_path / "a")
    b = peft_adapter(tiny_gemma_dir, tmp_path / "b", seed=1)
    config = json.loads((b / "adapter_config.json").read_text())
    (b / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))
    with pytest.raises(InputError, match="r is 8 here, 4 in") as e:
        soup_adapters([a, b], tmp_path / "soup")
    assert e.value.field == "r" and Path(e.value.path) == b / "adapter_config.json"
    assert not (tmp_path / "soup").exists()


def test_members_with_other_tensors_are_refused(tiny_gemma_dir, tmp_path):
    a = peft_adapter(tiny_gemma_dir, tmp_path / "a")
    b = peft_adapter(tiny_gemma_dir, tmp_path / "b", seed=1)
    tensors = load_file(b / "adapter_model.safetensors")
    del tensors[sorted(tensors)[0]]
    save_file(tensors, b / "adapter_model.safetensors")
    with pytest.raises(InputError, match="other tensors"):
        soup_adapters([a, b], tmp_path / "soup")


def test_missing_adapter_files_are_named(tiny_gemma_dir, tmp_path):
    a = peft_adapter(tiny_gemma_dir, tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(InputError, match="missing") as e:
        soup_adapters([a, tmp_path / "b"], tmp_path / "soup")
    assert Path(e.value.path) == tmp_path / "b" / "adapter_model.safetensors"


# --- train.soup: the train stage's runs of several seeds, written as their soup ---------------------

from calltune.train.run import MEMBERS, run_training  # noqa: E402
from calltune.train.session import SUMMARY_FILE, TrainPaths  # noqa: E402
from train_helpers import tiny_params  # noqa: E402


def short(**overrides) -> dict:
    """tiny_params, 4 steps a run (a soup trains several)."""
    return tiny_params(**{"max_steps": 4, **overrides})


def soup_paths(tmp_path: Path, splits, base: Path, name: str = "run") -> TrainPaths:
    root = tmp_path / name
    return TrainPaths(train=splits[0], valid=splits[1], base=base, out=root / "adapter",
                      checkpoints=root / "ckpt", live=root / "live")


def members_of(paths: TrainPaths) -> list[Path]:
    return sorted((paths.checkpoints / MEMBERS).iterdir())


def test_a_soup_run_is_the_mean_of_its_seeds_runs(tiny_gemma_dir, tmp_path, splits):
    params = short(soup=2)
    soup = soup_paths(tmp_path, splits, tiny_gemma_dir)
    summary = run_training(params, soup, progress=False)
    seed = params["base"]["seed"]
    assert summary["soup"] == 2 and summary["seeds"] == [seed, seed + 1]
    assert [m["seed"] for m in summary["members"]] == [seed, seed + 1]
    written = json.loads((soup.out / SUMMARY_FILE).read_text())
    assert written["files"] == ["adapter_model.safetensors", "adapter_config.json"]
    assert json.loads((soup.out / "adapter_config.json").read_text())["r"] == 8  # 2 x rank 4
    # each member is exactly the plain run of its seed
    members = members_of(soup)
    assert [m.name.split("-")[0] for m in members] == ["0", "1"]
    alone = soup_paths(tmp_path, splits, tiny_gemma_dir, "alone")
    run_training({**short(), "base": {**params["base"], "seed": seed + 1}}, alone, progress=False)
    for key, value in load_file(alone.out / "adapter_model.safetensors").items():
        assert torch.equal(value, load_file(members[1] / "adapter_model.safetensors")[key]), key
    # and the soup is their mean
    fused = [fused_weights(tiny_gemma_dir, m, tmp_path / f"fused{i}") for i, m in enumerate(members)]
    mean = fused_weights(tiny_gemma_dir, soup.out, tmp_path / "fused-soup")
    for name, weight in mean.items():
        assert (weight.double() - (fused[0][name].double() + fused[1][name].double()) / 2).abs().max() < TOLERANCE
    # one dvclive log, each run under its own name
    plots = soup.live / "plots" / "metrics"
    for i in (0, 1):
        assert len((plots / f"member-{i}" / "train" / "loss.tsv").read_text().splitlines()) == 5  # header + 4 steps
    metrics = json.loads((soup.live / "metrics.json").read_text())
    assert metrics["member-1"]["best_valid_loss"] == summary["members"][1]["best_valid_loss"]


def test_a_resumed_soup_keeps_finished_runs_and_grows(tiny_gemma_dir, tmp_path, splits):
    """soup 2, then soup 3 with resume: the two runs are reused (not retrained), the third trained,
    and the result is the soup of the three."""
    from calltune.train.soup import soup_adapters

    paths = soup_paths(tmp_path, splits, tiny_gemma_dir)
    run_training(short(soup=2), paths, progress=False)
    finished = {m.name: m.stat().st_mtime_ns for m in members_of(paths)}
    summary = run_training(short(soup=3, resume=True), paths, progress=False)
    assert {m.name: m.stat().st_mtime_ns for m in members_of(paths)[:2]} == finished  # untouched
    assert len(members_of(paths)) == 3 and summary["seeds"][2] == summary["seeds"][0] + 2
    assert [m["steps"] for m in summary["members"]] == [4, 4, 4]
    soup_adapters(members_of(paths), tmp_path / "three")
    grown, three = (load_file(p / "adapter_model.safetensors") for p in (paths.out, tmp_path / "three"))
    assert grown.keys() == three.keys() and all(torch.equal(grown[k], three[k]) for k in grown)


def test_resuming_with_other_params_is_refused_and_keeps_the_soup(tiny_gemma_dir, tmp_path, splits):
    """As for one run: a checkpoint of other params is an error naming train.resume, not a silent restart."""
    paths = soup_paths(tmp_path, splits, tiny_gemma_dir)
    run_training(short(soup=2), paths, progress=False)
    soup = (paths.out / "adapter_model.safetensors").read_bytes()
    with pytest.raises(InputError, match="other params") as e:
        run_training(short(soup=2, resume=True, lr=1e-3), paths, progress=False)
    assert e.value.field == "train.resume"
    assert (paths.out / "adapter_model.safetensors").read_bytes() == soup and len(members_of(paths)) == 2


@pytest.mark.parametrize("method", ["dora", "full"])
def test_a_soup_of_other_methods_is_refused(tiny_gemma_dir, tmp_path, splits, method):
    paths = soup_paths(tmp_path, splits, tiny_gemma_dir)
    with pytest.raises(InputError, match="LoRA") as e:
        run_training(short(soup=2, method=method), paths, progress=False)
    assert e.value.field == "train.soup"
    assert not paths.out.exists() and not paths.checkpoints.exists()


def test_each_run_is_a_whole_run_of_its_seed():
    """Each run gets the whole budget: two runs of half the length souped lost to one run on 2 CPU
    cores (bench/README.md), so max_minutes is per run, not shared."""
    from calltune.train.run import member_params

    params = tiny_params(soup=3, max_minutes=15)
    runs = [member_params(params, i) for i in range(3)]
    assert [r["train"]["max_minutes"] for r in runs] == [15, 15, 15]
    assert [r["base"]["seed"] for r in runs] == [params["base"]["seed"] + i for i in range(3)]
    assert [r["train"]["soup"] for r in runs] == [1, 1, 1] and params["train"]["soup"] == 3  # the caller's kept
