"""fuse: the merged model computes what base + adapter computes, and is a complete model directory."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from adapter_helpers import mlx_adapter, model_logits, peft_adapter, peft_logits
from click.testing import CliRunner
from export_helpers import ROOT, stage_main
from gguf_helpers import TOOLS, conversation

from calltune.errors import InputError
from calltune.formats import get_format
from calltune.fuse import adapter_kind, fuse

# fp32 merge vs the unmerged adapter path: both are float32 sums of the same products in another order.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ids(tiny_gemma_dir) -> list[int]:
    """A FunctionGemma prompt longer than the tiny model's sliding window (64)."""
    from transformers import AutoTokenizer

    prompt = get_format("functiongemma").prompt(conversation("What is the weather in Tokyo?"), TOOLS)
    ids = AutoTokenizer.from_pretrained(tiny_gemma_dir)(prompt, add_special_tokens=False)["input_ids"]
    assert len(ids) > 64
    return ids


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_fused_logits_equal_base_plus_peft_adapter(tiny_gemma_dir, tmp_path, ids, dora):
    adapter = peft_adapter(tiny_gemma_dir, tmp_path / "adapter", dora=dora)
    record = fuse(tiny_gemma_dir, adapter, tmp_path / "fused")
    expected = peft_logits(tiny_gemma_dir, adapter, ids)
    fused = model_logits(tmp_path / "fused", ids)
    diff = (fused - expected).abs().max().item()
    print(f"\n{'dora' if dora else 'lora'}: max |fused - (base + adapter)| = {diff:.2e}")
    assert diff < TOLERANCE
    assert (fused - model_logits(tiny_gemma_dir, ids)).abs().max().item() > 100 * TOLERANCE  # the adapter mattered
    assert record["adapter"]["kind"] == "peft" and record["adapter"]["method"] == ("dora" if dora else "lora")


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_fused_logits_equal_mlx_lm_with_adapter(tiny_gemma_dir, tmp_path, ids, dora):
    expected = mlx_adapter(tiny_gemma_dir, tmp_path / "mlx", ids, dora=dora)
    record = fuse(tiny_gemma_dir, tmp_path / "mlx", tmp_path / "fused")
    fused = model_logits(tmp_path / "fused", ids).numpy()
    diff = float(np.abs(fused - expected).max())
    print(f"\nmlx {'dora' if dora else 'lora'}: max |fused (torch) - mlx-lm with adapter| = {diff:.2e}")
    assert diff < TOLERANCE
    assert float(np.abs(fused - model_logits(tiny_gemma_dir, ids).numpy()).max()) > 100 * TOLERANCE
    adapter = record["adapter"]
    assert (adapter["kind"], adapter["method"], adapter["tensors_merged"]) == ("mlx", "dora" if dora else "lora", 18)
    assert list(adapter["sha256"]) == ["adapters.safetensors"]


def test_full_fine_tune_is_taken_as_is(tiny_gemma_dir, tmp_path, ids):
    from transformers import AutoModelForCausalLM

    trained = tmp_path / "full"
    shutil.copytree(tiny_gemma_dir, trained)
    model = AutoModelForCausalLM.from_pretrained(trained)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(1.5)
    model.save_pretrained(trained)
    fuse(tiny_gemma_dir, trained, tmp_path / "fused")
    assert torch.equal(model_logits(tmp_path / "fused", ids), model_logits(trained, ids))


def test_fused_directory_is_complete(tiny_gemma_dir, tmp_path):
    from transformers import AutoTokenizer

    fuse(tiny_gemma_dir, peft_adapter(tiny_gemma_dir, tmp_path / "adapter"), tmp_path / "fused")
    out = tmp_path / "fused"
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "chat_template.jinja", "calltune_source.json"} <= {p.name for p in out.iterdir()}
    template = json.loads((out / "tokenizer_config.json").read_text())["chat_template"]
    assert template == (out / "chat_template.jinja").read_text() == get_format("functiongemma").chat_template
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == json.loads((tiny_gemma_dir / "generation_config.json").read_text())["eos_token_id"]
    assert set(generation["eos_token_id"]) == {1, 50, 106}  # <eos>, <start_function_response>, <end_of_turn>
    base_tok, fused_tok = AutoTokenizer.from_pretrained(tiny_gemma_dir), AutoTokenizer.from_pretrained(out)
    text = get_format("functiongemma").prompt(conversation("Send an email to bob"), TOOLS)
    assert fused_tok(text)["input_ids"] == base_tok(text)["input_ids"]
    assert fused_tok.convert_ids_to_tokens([48, 49, 52]) == ["<start_function_call>", "<end_function_call>", "<escape>"]
    assert not list(out.parent.glob(".fused.*"))  # no temp dir left behind


def test_bfloat16_fuse_writes_bfloat16(tiny_gemma_dir, tmp_path, ids):
    from safetensors import safe_open

    adapter = peft_adapter(tiny_gemma_dir, tmp_path / "adapter")
    fuse(tiny_gemma_dir, adapter, tmp_path / "fused", dtype="bfloat16")
    with safe_open(tmp_path / "fused" / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    diff = (model_logits(tmp_path / "fused", ids) - peft_logits(tiny_gemma_dir, adapter, ids)).abs().max().item()
    assert diff < 0.05  # bf16 rounding of the merged weights only


def test_fuses_a_llama_adapter(tiny_llama_dir, tmp_path):
    adapter = peft_adapter(tiny_llama_dir, tmp_path / "adapter", dora=True)
    fuse(tiny_llama_dir, adapter, tmp_path / "fused")
    ids = list(range(3, 40))
    assert (model_logits(tmp_path / "fused", ids) - peft_logits(tiny_llama_dir, adapter, ids)).abs().max() < TOLERANCE
    config = json.loads((tmp_path / "fused" / "tokenizer_config.json").read_text())
    assert "<tool_call>" in config["chat_template"]


# --- failures: clear errors, nothing written -------------------------------------------------------

def test_missing_adapter_dir(tiny_gemma_dir, tmp_path):
    with pytest.raises(InputError, match="adapter directory not found"):
        fuse(tiny_gemma_dir, tmp_path / "nope", tmp_path / "fused")
    assert not (tmp_path / "fused").exists()


def test_pickle_adapter_is_refused(tmp_path):
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match="pickle adapters"):
        adapter_kind(tmp_path)


def test_empty_adapter_dir_names_the_expected_files(tmp_path):
    with pytest.raises(InputError, match="adapter_model.safetensors"):
        adapter_kind(tmp_path)


def test_adapter_for_another_model_is_a_clear_error(tiny_gemma_dir, tiny_llama_dir, tmp_path):
    adapter = peft_adapter(tiny_llama_dir, tmp_path / "adapter")
    with pytest.raises(InputError, match="does not fit the base model"):
        fuse(tiny_gemma_dir, adapter, tmp_path / "fused")
    assert not (tmp_path / "fused").exists()


def test_mlx_adapter_naming_a_missing_layer(tiny_gemma_dir, tmp_path, ids):
    from safetensors.torch import load_file, save_file

    mlx_adapter(tiny_gemma_dir, tmp_path / "mlx", ids)
    weights = tmp_path / "mlx" / "adapters.safetensors"
    tensors = {k.replace("layers.0.", "layers.60."): v for k, v in load_file(weights).items()}
    save_file(tensors, weights)
    with pytest.raises(InputError, match="layers.60.* not a linear layer"):
        fuse(tiny_gemma_dir, tmp_path / "mlx", tmp_path / "fused")
    assert not (tmp_path / "fused").exists()


def test_mlx_adapter_without_scale(tiny_gemma_dir, tmp_path, ids):
    mlx_adapter(tiny_gemma_dir, tmp_path / "mlx", ids)
    config_path = tmp_path / "mlx" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    del config["lora_parameters"]["scale"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(InputError) as error:
        fuse(tiny_gemma_dir, tmp_path / "mlx", tmp_path / "fused")
    assert error.value.field == "lora_parameters.scale" and error.value.path == str(config_path)


def test_fuse_stage_cli(tiny_gemma_dir, tmp_path):
    main = stage_main("fuse")
    adapter = peft_adapter(tiny_gemma_dir, tmp_path / "adapter")
    args = ["--params", str(ROOT / "params.yaml"), "--base-model", str(tiny_gemma_dir), "--out", str(tmp_path / "fused")]
    result = CliRunner().invoke(main, [*args, "--adapter", str(adapter)])
    assert result.exit_code == 0, result.output
    assert "fused peft adapter (lora)" in result.output and (tmp_path / "fused" / "model.safetensors").is_file()
    result = CliRunner().invoke(main, [*args, "--adapter", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "error:" in result.output and "adapter directory not found" in result.output
