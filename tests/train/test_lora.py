"""Making the base trainable: LoRA / DoRA / full, target modules, QLoRA's clean refusal, saving."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from calltune.errors import InputError
from calltune.train.lora import (init_from_adapter, linear_module_names, load_base_model, load_trainable_state, make_trainable,
                                 save_trained, trainable_state)

CPU = torch.device("cpu")
LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def _lora_layers(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if hasattr(mod, "lora_A")}


def test_lora_trains_only_the_adapters(tiny_gemma_dir):
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert _lora_layers(model) == {"q_proj", "v_proj"}


def test_all_linear_wraps_every_linear_but_the_head(tiny_gemma_dir):
    base = load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU)
    names = set(linear_module_names(base))
    model = make_trainable(base, "lora", {**LORA, "target_modules": ["all-linear"]})
    assert _lora_layers(model) == names
    assert names >= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_dora_adds_magnitudes(tiny_gemma_dir):
    model = make_trainable(load_base_model(tiny_gemma_dir, "dora", torch.float32, CPU), "dora", LORA)
    assert any("lora_magnitude_vector" in n for n, p in model.named_parameters() if p.requires_grad)


def test_full_trains_everything_in_fp32_master_weights(tiny_gemma_dir):
    model = make_trainable(load_base_model(tiny_gemma_dir, "full", torch.bfloat16, CPU), "full", LORA)
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())


def test_adapters_sit_on_a_bf16_base(tiny_gemma_dir):
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.bfloat16, CPU), "lora", LORA)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert dtypes["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"] == torch.bfloat16
    assert all(d == torch.float32 for n, d in dtypes.items() if "lora_" in n)


def test_unknown_target_module_names_the_valid_ones(tiny_gemma_dir):
    base = load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU)
    with pytest.raises(InputError) as err:
        make_trainable(base, "lora", {**LORA, "target_modules": ["query_key_value"]})
    assert err.value.field == "train.lora.target_modules"
    assert "q_proj" in err.value.reason and "all-linear" in err.value.reason


def test_all_linear_cannot_be_mixed(tiny_gemma_dir):
    base = load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU)
    with pytest.raises(InputError):
        make_trainable(base, "lora", {**LORA, "target_modules": ["all-linear", "q_proj"]})


@pytest.mark.skipif(torch.cuda.is_available(), reason="QLoRA may run where CUDA is present")
def test_qlora_refuses_cleanly_without_cuda(tiny_gemma_dir):
    with pytest.raises(InputError) as err:
        load_base_model(tiny_gemma_dir, "qlora", torch.float32, CPU)
    assert err.value.field == "train.method" and "bitsandbytes" in err.value.reason


def test_saved_adapter_is_peft_safetensors_and_round_trips(tiny_gemma_dir, tmp_path):
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.01)
    files = save_trained(model, tmp_path, "lora")
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gemma_dir), tmp_path)
    ids = torch.tensor([[2, 105, 300, 400, 500]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def test_trainable_state_round_trip_and_missing_tensors(tiny_gemma_dir):
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    state = trainable_state(model)
    changed = {k: v + 1 for k, v in state.items()}
    load_trainable_state(model, changed)
    assert all(torch.equal(trainable_state(model)[k], changed[k]) for k in state)
    with pytest.raises(InputError):
        load_trainable_state(model, dict(list(state.items())[1:]))


def _saved_adapter(tiny_gemma_dir, out, method="lora", lora=LORA):
    model = make_trainable(load_base_model(tiny_gemma_dir, method, torch.float32, CPU), method, lora)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.uniform_(-0.05, 0.05)
    save_trained(model, out, method)
    return trainable_state(model)


def test_init_from_adapter_starts_from_its_weights(tiny_gemma_dir, tmp_path):
    saved = _saved_adapter(tiny_gemma_dir, tmp_path / "a")
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    fresh = trainable_state(model)
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)  # PEFT's init differs from the saved one
    init_from_adapter(model, tmp_path / "a", "lora", LORA)
    started = trainable_state(model)
    assert started.keys() == saved.keys() and all(torch.equal(started[k], saved[k]) for k in saved)


@pytest.mark.parametrize("change, why", [
    ({"rank": 8}, "r=4"), ({"alpha": 4}, "lora_alpha=8"),
    ({"target_modules": ["q_proj", "k_proj", "v_proj"]}, "modules differ")])
def test_init_from_an_unlike_adapter_names_the_difference(tiny_gemma_dir, tmp_path, change, why):
    _saved_adapter(tiny_gemma_dir, tmp_path / "a")
    lora = {**LORA, **change}
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", lora)
    with pytest.raises(InputError) as err:
        init_from_adapter(model, tmp_path / "a", "lora", lora)
    assert err.value.field == "train.init_adapter" and why in str(err.value)


def test_init_from_adapter_refuses_dora_mismatch_full_and_a_missing_folder(tiny_gemma_dir, tmp_path):
    _saved_adapter(tiny_gemma_dir, tmp_path / "a")
    dora = make_trainable(load_base_model(tiny_gemma_dir, "dora", torch.float32, CPU), "dora", LORA)
    with pytest.raises(InputError, match="use_dora"):
        init_from_adapter(dora, tmp_path / "a", "dora", LORA)
    full = make_trainable(load_base_model(tiny_gemma_dir, "full", torch.float32, CPU), "full", LORA)
    with pytest.raises(InputError, match="only an adapter"):
        init_from_adapter(full, tmp_path / "a", "full", LORA)
    model = make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora", LORA)
    with pytest.raises(InputError) as err:
        init_from_adapter(model, tmp_path / "missing", "lora", LORA)
    assert "adapter_model.safetensors" in str(err.value)
