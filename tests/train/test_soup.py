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
