"""Base-model resolution: GGUF -> HF directory (weights, tokenizer, FunctionGemma names, provenance)."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from calltune.base_model import resolve_base
from calltune.model_dir import SOURCE_FILE
from calltune.errors import InputError
from calltune.io import sha256_file
from calltune.tokenizer import FUNCTIONGEMMA_TOKENS
from tiny_models import build_tiny_gemma

TEXTS = [
    "Hello world, what's the weather in Tokyo?",
    "  two  spaces,\ttabs\n\nand newlines 12345 -3.5 ü é 🤖 日本",
    "<start_of_turn>user\ncall:get_weather{location:Paris}<end_of_turn>",
]


@pytest.fixture(scope="module")
def plain_gemma(tmp_path_factory):
    """A plain Gemma 3 (unused40..46 at ids 46..52), converted to GGUF by llama.cpp's converter."""
    root = tmp_path_factory.mktemp("gguf")
    hf_dir = build_tiny_gemma(root / "plain", functiongemma=False)
    gguf = root / "tiny.gguf"
    subprocess.run([sys.executable, "-m", "convert_hf_to_gguf", str(hf_dir), "--outfile", str(gguf),
                    "--outtype", "f32"], check=True, capture_output=True)
    return hf_dir, gguf


@pytest.fixture(scope="module")
def resolved(plain_gemma, tmp_path_factory):
    out = tmp_path_factory.mktemp("resolved") / "base"
    record = resolve_base(str(plain_gemma[1]), out)
    return out, record


def test_gguf_weights_round_trip_exactly(plain_gemma, resolved):
    original = AutoModelForCausalLM.from_pretrained(plain_gemma[0]).eval()
    base = AutoModelForCausalLM.from_pretrained(resolved[0]).eval()
    ids = AutoTokenizer.from_pretrained(plain_gemma[0])(TEXTS[0] * 10, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (original(ids).logits - base(ids).logits).abs().max().item()
    assert diff < 1e-5
    assert base.config.query_pre_attn_scalar == base.config.head_dim


def test_gguf_tokenizer_matches_original_and_gets_function_tokens(plain_gemma, resolved):
    original = AutoTokenizer.from_pretrained(plain_gemma[0])
    tokenizer = AutoTokenizer.from_pretrained(resolved[0])
    for text in TEXTS:
        assert tokenizer.encode(text) == original.encode(text), text
    for token_id, name in FUNCTIONGEMMA_TOKENS.items():
        assert tokenizer.convert_tokens_to_ids(name) == token_id
        assert tokenizer.convert_ids_to_tokens(token_id) == name
    call = tokenizer.encode("<start_function_call>call:f{}<end_function_call>", add_special_tokens=False)
    assert call[0] == 48 and call[-1] == 49
    assert tokenizer.decode([48, 52]) == "<start_function_call><escape>"


def test_functiongemma_template_and_stop_tokens_installed(resolved):
    out, _ = resolved
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert "<start_function_declaration>" in config["chat_template"]
    assert (out / "chat_template.jinja").read_text() == config["chat_template"]
    generation = json.loads((out / "generation_config.json").read_text())
    assert set(generation["eos_token_id"]) == {1, 106, 50}
    assert (out / "tokenizer.model").is_file()  # llama.cpp's Gemma converter reads it


def test_provenance_recorded(plain_gemma, resolved):
    out, record = resolved
    saved = json.loads((out / SOURCE_FILE).read_text())
    assert saved == record
    assert record["source"] == "gguf" and record["dtype"] == "float32" and record["functiongemma"]
    assert record["sha256"] == sha256_file(plain_gemma[1])


def test_weights_are_safetensors_only(resolved):
    names = {p.name for p in resolved[0].iterdir()}
    assert "model.safetensors" in names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)


def test_resolve_from_hf_dir_renames_and_converts_dtype(plain_gemma, tmp_path):
    record = resolve_base(str(plain_gemma[0]), tmp_path / "base", dtype="bfloat16")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype="auto")
    assert model.dtype == torch.bfloat16
    assert AutoTokenizer.from_pretrained(tmp_path / "base").convert_tokens_to_ids("<escape>") == 52
    assert record["source"] == "hf-dir" and "model.safetensors" in record["sha256"]


@pytest.mark.parametrize("spec", ["missing.gguf", "no-such-thing", "./relative/dir"])
def test_unresolvable_spec_is_a_clear_error(spec, tmp_path):
    with pytest.raises(InputError, match="model.base"):
        resolve_base(str(tmp_path / spec) if spec.endswith(".gguf") else spec, tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_corrupt_gguf_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InputError, match="bad.gguf"):
        resolve_base(str(bad), tmp_path / "base")
    assert not (tmp_path / "base").exists()
