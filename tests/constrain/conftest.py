"""Fixtures of the constrained-decoding tests: the tiny models' tokenizers and a tiny GGUF."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def gemma_tokenizer(tiny_gemma_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gemma_dir)


@pytest.fixture(scope="session")
def llama_tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_gemma_dir, tmp_path_factory) -> Path:
    """The tiny random Gemma as an f32 GGUF (llama.cpp's vocabulary and weights)."""
    from calltune.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("constrain-gguf")
    export_gguf(tiny_gemma_dir, out, ["f32"])
    return next(out.glob("*.gguf"))


@pytest.fixture(scope="session")
def gguf_vocab(tiny_gguf):
    from calltune.engines.libllama import Model

    return Model(tiny_gguf, vocab_only=True)
