import pytest

from calltune.data.records import read_records
from calltune.errors import InputError
from data_helpers import errors_of


def test_jsonl_records_keep_line_numbers_and_skip_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert read_records(path) == [(1, {"a": 1}), (3, {"a": 2})]


def test_every_malformed_jsonl_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n{oops}\n', encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        read_records(path)
    assert [(e.line, e.path) for e in errors_of(excinfo)] == [(2, str(path)), (4, str(path))]
    assert "invalid JSON" in errors_of(excinfo)[0].reason


def test_json_array_items_get_the_line_they_start_on(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  {\n    "b": [1, 2]\n  },\n\n  "x"\n]\n', encoding="utf-8")
    assert read_records(path) == [(2, {"a": 1}), (3, {"b": [1, 2]}), (7, "x")]


def test_malformed_json_array_names_the_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  {"b": }\n]\n', encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        read_records(path)
    assert excinfo.value.line == 3


def test_array_only_rejects_json_lines(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON list"):
        read_records(path, array_only=True)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_records(tmp_path / "nope.jsonl")
