"""The foundation merge of the base stage: merged base == base + foundation adapter; the adapter's
recorded base is checked; model.foundation: none is the base as it is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from calltune.base_model import resolve_base
from calltune.model_dir import SOURCE_FILE
from calltune.errors import InputError
from calltune.foundation.adapter import ADAPTER_DIR, BASE_FILE, foundation_dir, shrink_to_bf16, stamp
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from adapter_helpers import model_logits, peft_adapter, peft_logits  # noqa: E402

TOLERANCE = 1e-4  # fp32 merge vs PEFT's unmerged path: the same products summed in another order


@pytest.fixture(scope="module")
def ids(tiny_gemma_dir) -> list[int]:
    """Token ids of a text longer than the tiny model's sliding window (64)."""
    from transformers import AutoTokenizer

    text = "Set an alarm for 7am, then play some jazz in the kitchen and text Mia I'm late. " * 6
    ids = AutoTokenizer.from_pretrained(tiny_gemma_dir)(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 64
    return ids


@pytest.fixture(scope="module")
def adapter(tiny_gemma_dir, tmp_path_factory):
    return peft_adapter(tiny_gemma_dir, tmp_path_factory.mktemp("foundation") / "adapter", seed=3)


def test_merged_base_equals_base_plus_foundation_adapter(tiny_gemma_dir, adapter, tmp_path, ids):
    record = resolve_base(str(tiny_gemma_dir), tmp_path / "base", foundation=adapter)
    merged = model_logits(tmp_path / "base", ids)
    diff = (merged - peft_logits(tiny_gemma_dir, adapter, ids)).abs().max().item()
    assert diff < TOLERANCE
    assert (merged - model_logits(tiny_gemma_dir, ids)).abs().max().item() > 100 * TOLERANCE  # it mattered
    assert record["foundation"]["adapter"] == "adapter" and len(record["foundation"]["sha256"]) == 64
    assert json.loads((tmp_path / "base" / SOURCE_FILE).read_text())["foundation"] == record["foundation"]


def test_no_foundation_is_the_base_as_it_is(tiny_gemma_dir, tmp_path, ids):
    record = resolve_base(str(tiny_gemma_dir), tmp_path / "base", foundation=foundation_dir("none"))
    assert "foundation" not in record
    assert torch.equal(model_logits(tmp_path / "base", ids), model_logits(tiny_gemma_dir, ids))


def test_bfloat16_base_merges_in_float32_then_casts(tiny_gemma_dir, adapter, tmp_path, ids):
    resolve_base(str(tiny_gemma_dir), tmp_path / "base", dtype="bfloat16", foundation=adapter)
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert config.get("torch_dtype", config.get("dtype")) == "bfloat16"
    merged = model_logits(tmp_path / "base", ids)
    expected = peft_logits(tiny_gemma_dir, adapter, ids)
    # bf16 weights: ~3 significant digits; a relative bound, not the fp32 one.
    assert (merged - expected).norm() / expected.norm() < 2e-2


def test_an_adapter_stamped_for_other_weights_is_refused(tiny_gemma_dir, adapter, tmp_path):
    stamped = tmp_path / "stamped"
    stamped.mkdir()
    for f in adapter.iterdir():
        (stamped / f.name).write_bytes(f.read_bytes())
    (stamped / BASE_FILE).write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(InputError) as excinfo:
        resolve_base(str(tiny_gemma_dir), tmp_path / "base", foundation=stamped)
    assert excinfo.value.field == "model.foundation" and "model.foundation: none" in excinfo.value.reason
    assert not (tmp_path / "base").exists()  # nothing half-written


def test_stamp_records_the_base_it_was_trained_on(tiny_gemma_dir, adapter, tmp_path):
    resolve_base(str(tiny_gemma_dir), tmp_path / "base")
    out = tmp_path / "stamped"
    out.mkdir()
    for f in adapter.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    record = stamp(tmp_path / "base", out)
    assert record["sha256"] == json.loads((tmp_path / "base" / SOURCE_FILE).read_text())["sha256"]
    resolve_base(str(tiny_gemma_dir), tmp_path / "again", foundation=out)  # the same weights: accepted


def test_missing_adapter_and_unknown_foundation_are_clear_errors(tiny_gemma_dir, tmp_path):
    with pytest.raises(InputError) as excinfo:
        resolve_base(str(tiny_gemma_dir), tmp_path / "base", foundation=tmp_path / "nowhere")
    assert excinfo.value.field == "model.foundation"
    with pytest.raises(InputError) as excinfo:
        foundation_dir("functiongemma")
    assert excinfo.value.field == "model.foundation"
    assert foundation_dir("calltune") == ADAPTER_DIR


def test_a_bf16_shipped_adapter_merges_to_nearly_the_same_model(tiny_gemma_dir, adapter, tmp_path, ids):
    small = tmp_path / "bf16"
    small.mkdir()
    for f in adapter.iterdir():
        (small / f.name).write_bytes(f.read_bytes())
    shrink_to_bf16(small / "adapter_model.safetensors")
    assert (small / "adapter_model.safetensors").stat().st_size < 0.6 * (adapter / "adapter_model.safetensors").stat().st_size
    resolve_base(str(tiny_gemma_dir), tmp_path / "base", foundation=small)
    merged, expected = model_logits(tmp_path / "base", ids), peft_logits(tiny_gemma_dir, adapter, ids)
    # bf16 keeps ~3 significant digits of each adapter weight: a relative bound, not the fp32 one.
    assert (merged - expected).norm() / expected.norm() < 1e-2


EMBEDDED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # the default base's GGUF


def test_the_shipped_adapter_is_small_bf16_and_fits_the_embedded_base():
    from safetensors import safe_open

    weights = ADAPTER_DIR / "adapter_model.safetensors"
    assert weights.stat().st_size <= 40 * 2**20  # the budget for a file in the repository
    config = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 64 and config["lora_alpha"] == 64
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"}
    with safe_open(weights, "pt") as f:
        names = list(f.keys())
        assert len(names) == 18 * 7 * 2  # Gemma 3 270M: 18 layers x 7 projections x (A, B)
        assert {f.get_slice(n).get_dtype() for n in names} == {"BF16"}
    assert json.loads((ADAPTER_DIR / BASE_FILE).read_text())["sha256"] == EMBEDDED_SHA256
    assert foundation_dir("calltune") == ADAPTER_DIR
