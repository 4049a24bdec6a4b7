"""Prediction records round-trip through JSONL; a broken file names its line and field."""

import json

import pytest

from calltune.errors import InputError
from calltune.evaluate.metrics import judge
from calltune.evaluate.predictions import Prediction, read_predictions, write_predictions


def make(i, calls, expected, parse_error=None):
    return Prediction(
        id=f"ex-{i}", prompt="<bos>prompt", raw_output="<start_function_call>call:f{a:1}",
        calls=calls, expected=expected, parse_error=parse_error, latency_s=0.25, n_generated_tokens=7,
        judgement=judge(calls, parse_error, expected, []),
    )


def test_jsonl_round_trip_keeps_every_field(tmp_path):
    f = {"name": "f", "arguments": {"a": 1}}
    preds = [make(0, [f], [f]), make(1, [], [f], parse_error="unterminated call")]
    path = tmp_path / "predictions" / "base.jsonl"
    assert write_predictions(path, preds) == 2
    assert read_predictions(path) == preds
    row = json.loads(path.read_text().splitlines()[1])
    assert row["verdict"] == "unparseable" and row["reason"] == "parse error: unterminated call"
    assert list(row)[:3] == ["id", "prompt", "raw_output"]


def test_missing_field_names_line_and_field(tmp_path):
    path = tmp_path / "p.jsonl"
    good = make(0, [], []).to_dict()
    bad = {k: v for k, v in good.items() if k != "latency_s"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError) as e:
        read_predictions(path)
    assert (e.value.line, e.value.field, e.value.reason) == (3, "latency_s", "missing field")


def test_non_object_row_and_bad_json_name_their_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(InputError, match=r"p.jsonl:1: expected a JSON object"):
        read_predictions(path)
    path.write_text(json.dumps(make(0, [], []).to_dict()) + "\n{oops\n")
    with pytest.raises(InputError, match=r"p.jsonl:2: invalid JSON"):
        read_predictions(path)
