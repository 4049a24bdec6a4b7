"""GGUF test fixtures: the tiny Gemma taught to call tools (gguf_helpers) and its GGUF files."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tool_ggufs(taught_gemma_dir, tmp_path_factory):
    """(float dir, quantized dir, export report, quantize report) for the taught tiny model."""
    from calltune.export.gguf import export_gguf, quantize_gguf

    root = tmp_path_factory.mktemp("gguf")
    exported = export_gguf(taught_gemma_dir, root / "gguf", ["f32", "f16"])
    quantized = quantize_gguf(root / "gguf", root / "quantized", ["q8_0", "q4_K_M"], threads=2)
    return root / "gguf", root / "quantized", exported, quantized


# --- ONNX fixtures (fuse / ONNX export / quantize / Node / browser tests) --------------------------

@pytest.fixture(scope="session")
def tool_onnx(tiny_gemma_dir, taught_gemma_dir, tmp_path_factory):
    """The taught tiny model through the pipeline: fuse (a full fine-tune) -> ONNX -> quantized.
    Returns (fused dir, ONNX fp32 dir, quantized dir, quantize report)."""
    from calltune.export.onnx import export_onnx
    from calltune.export.onnx_quantize import VARIANTS, quantize_onnx
    from calltune.fuse import fuse

    root = tmp_path_factory.mktemp("onnx")
    fuse(tiny_gemma_dir, taught_gemma_dir, root / "fused")
    export_onnx(root / "fused", root / "onnx")
    report = quantize_onnx(root / "onnx", root / "quantized", list(VARIANTS))
    return root / "fused", root / "onnx", root / "quantized", report


@pytest.fixture(scope="session")
def check_examples(tmp_path_factory):
    from export_helpers import write_check_examples

    return write_check_examples(tmp_path_factory.mktemp("examples") / "test.jsonl")
