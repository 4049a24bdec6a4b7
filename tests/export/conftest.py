"""GGUF test fixtures: the tiny Gemma taught to call tools (gguf_helpers) and its GGUF files."""

from __future__ import annotations

import pytest

from gguf_helpers import teach_tool_calls


@pytest.fixture(scope="session")
def tool_gemma_dir(tiny_gemma_dir, tmp_path_factory):
    out, loss = teach_tool_calls(tiny_gemma_dir, tmp_path_factory.mktemp("taught") / "gemma")
    assert loss < 0.05, f"the tiny model did not learn the calls (loss {loss:.3f})"
    return out


@pytest.fixture(scope="session")
def tool_ggufs(tool_gemma_dir, tmp_path_factory):
    """(float dir, quantized dir, export report, quantize report) for the taught tiny model."""
    from calltune.export.gguf import export_gguf, quantize_gguf

    root = tmp_path_factory.mktemp("gguf")
    exported = export_gguf(tool_gemma_dir, root / "gguf", ["f32", "f16"])
    quantized = quantize_gguf(root / "gguf", root / "quantized", ["q8_0", "q4_K_M"], threads=2)
    return root / "gguf", root / "quantized", exported, quantized
