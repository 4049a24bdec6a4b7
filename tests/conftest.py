"""Shared fixtures: tiny random-weight models built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS / "export")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tiny_models import build_tiny_gemma, build_tiny_llama  # noqa: E402


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory) -> Path:
    """HF directory of a FunctionGemma-format tiny Gemma 3 (treat as read-only)."""
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny") / "gemma")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """HF directory of a tiny Llama with a tool-aware ChatML template (treat as read-only)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def taught_gemma_dir(tiny_gemma_dir, tmp_path_factory) -> Path:
    """The tiny Gemma fully fine-tuned until it makes gguf_helpers.CALLS (a stand-in tuned model)."""
    from gguf_helpers import teach_tool_calls

    out, loss = teach_tool_calls(tiny_gemma_dir, tmp_path_factory.mktemp("taught") / "gemma")
    assert loss < 0.02, f"the tiny model did not learn the calls (loss {loss:.3f})"
    return out


@pytest.fixture(scope="session")
def golden_cases() -> list[dict]:
    import json

    return json.loads((SHARED / "functiongemma" / "golden_cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    """llama.cpp's llama-server (calltune.llama_server finds it). Without one the test skips, unless
    CALLTUNE_REQUIRE_LLAMA_SERVER=1 (set by .ci/run, whose setup installs it) makes that a failure."""
    from calltune.errors import InputError
    from calltune.llama_server import find_llama_server

    try:
        return find_llama_server()
    except InputError as e:
        if os.environ.get("CALLTUNE_REQUIRE_LLAMA_SERVER") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))


def pytest_configure(config):
    config.addinivalue_line("markers", "js: runs web/ code or the exported model in Node or headless Chromium "
                                       "(needs .ci/install_js.sh: npm packages and Debian's chromium)")


@pytest.fixture(scope="session")
def torch_engine(tiny_gemma_dir):
    """calltune.engines.torch_engine.TorchEngine on the tiny random Gemma."""
    from calltune.engines.torch_engine import TorchEngine

    return TorchEngine(tiny_gemma_dir)
