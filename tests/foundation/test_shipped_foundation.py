"""The shipped foundation on the real embedded base (slow: resolves Gemma 3 270M, ~2-3 min, ~3 GB).

The raw base never calls a tool (call rate 0.000 on the starter test split, README.md); merged with
the foundation it must call the one declared function on held-out simple requests and write calls
that parse, on CPU, with calltune's own prompt and parser."""

from __future__ import annotations

import json

import pytest

from calltune.base_model import DEFAULT_BASE, resolve_base
from calltune.model_dir import SOURCE_FILE
from calltune.foundation.adapter import ADAPTER_DIR, foundation_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    out = tmp_path_factory.mktemp("foundation") / "base"
    resolve_base(DEFAULT_BASE, out, foundation=foundation_dir("calltune"))
    return out


def test_merged_base_records_the_foundation(merged):
    record = json.loads((merged / SOURCE_FILE).read_text())
    assert record["foundation"]["adapter"] == ADAPTER_DIR.name and len(record["foundation"]["sha256"]) == 64


def test_merged_base_calls_held_out_bfcl_functions(merged):
    from calltune.evaluate.bfcl import evaluate_bfcl, load_items
    from calltune.engines.torch_engine import TorchEngine
    from calltune.formats import get_format

    engine = TorchEngine(merged, dtype="float32", device="cpu", name="merged")
    fmt = get_format("auto", tokenizer=engine.tokenizer)
    # 16 irrelevance items: the shipped adapter calls on 0.29 of all 240 (H200), 4 of the first 8
    items = load_items(["simple_python"], limit=8) + load_items(["irrelevance"], limit=16)
    rows, metrics = evaluate_bfcl(engine, fmt, items, batch_size=8, max_new_tokens=96, progress=False)
    simple, irrelevance = metrics["categories"]["simple_python"], metrics["categories"]["irrelevance"]
    assert simple["call_rate"] >= 0.75 and simple["parse_valid_rate"] >= 0.75, simple
    assert simple["bfcl_accuracy"] > 0, simple  # some held-out calls exactly right
    assert irrelevance["call_rate"] <= 0.5, irrelevance  # and it still declines what no tool serves
