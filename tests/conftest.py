"""Shared fixtures: tiny random-weight models built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))
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
def golden_cases() -> list[dict]:
    import json

    return json.loads((SHARED / "functiongemma" / "golden_cases.json").read_text(encoding="utf-8"))
