"""Fixtures for the train tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_helpers import canonical_rows, write_rows


@pytest.fixture
def splits(tmp_path) -> tuple[Path, Path]:
    return (write_rows(tmp_path / "splits" / "train.jsonl", canonical_rows(16, seed=1)),
            write_rows(tmp_path / "splits" / "valid.jsonl", canonical_rows(4, seed=2)))
