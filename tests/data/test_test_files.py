"""Held-out test files: checked like examples, turned into records, never sharing a training query."""

import pytest

from calltune.data.test_files import checked_test_files, load_test_file
from calltune.data.tools import load_tools
from calltune.errors import InputError
from data_helpers import errors_of, tools_file, weather, write_jsonl
from test_split_stage import canonical

NO_CALL = "No tool fits."


@pytest.fixture
def tools(tmp_path):
    return load_tools(tools_file(tmp_path))


@pytest.fixture
def train(tmp_path):
    rows = [canonical(i, ["a"]) for i in range(3)]  # queries "request alpha alpha number 0", ...
    return write_jsonl(tmp_path / "train.jsonl", rows)


def test_a_good_file_becomes_records_named_after_it(tmp_path, tools, train):
    path = write_jsonl(tmp_path / "held.jsonl", [
        {"query": "Weather in Oslo?", "calls": [{**weather("Oslo"), "accept": {"location": ["Oslo, Norway"]}}]},
        "", {"query": "Sing", "calls": []}])
    records = load_test_file(path, "held", tools, [train], NO_CALL)
    assert [r["id"] for r in records] == ["held:1", "held:3"]
    assert records[0]["accept"] == [{"location": ["Oslo", "Oslo, Norway"]}]
    assert records[1]["messages"][-1] == {"role": "assistant", "content": NO_CALL}


def test_a_bad_line_names_file_line_and_field(tmp_path, tools, train):
    path = write_jsonl(tmp_path / "held.jsonl", [{"query": "ok", "calls": []},
                                                {"query": "q", "calls": [weather("Oslo", unit="kelvin")]},
                                                {"query": "q2", "calls": [{**weather("Oslo"),
                                                                          "accept": {"unit": ["kelvin"]}}]}])
    with pytest.raises(InputError) as excinfo:
        load_test_file(path, "held", tools, [train], NO_CALL)
    assert [(e.path, e.line, e.field) for e in errors_of(excinfo)] == [
        (str(path), 2, "calls[0].arguments.unit"), (str(path), 3, "calls[0].accept.unit[0]")]


def test_a_query_also_in_training_is_an_error_naming_both(tmp_path, tools, train):
    path = write_jsonl(tmp_path / "held.jsonl", [{"query": "Something new", "calls": []},
                                                {"query": "Request BRAVO alpha, number 1!", "calls": []}])
    with pytest.raises(InputError) as excinfo:
        load_test_file(path, "held", tools, [train], NO_CALL)
    (error,) = errors_of(excinfo)
    assert (error.path, error.line, error.field) == (str(path), 2, "query")
    assert f"the same query is in the training data: {train}:2 (id ex-00001, from e.jsonl:1)" in error.reason


def test_repeated_queries_and_empty_files_are_errors(tmp_path, tools, train):
    path = write_jsonl(tmp_path / "held.jsonl", [{"query": "Sing", "calls": []}, {"query": "sing!", "calls": []}])
    with pytest.raises(InputError, match=r"duplicate query \(first at line 1\)"):
        load_test_file(path, "held", tools, [train], NO_CALL)
    with pytest.raises(InputError, match="no test examples"):
        load_test_file(write_jsonl(tmp_path / "empty.jsonl", []), "empty", tools, [train], NO_CALL)


def test_test_file_names_must_be_unique():
    assert checked_test_files([{"name": "a", "path": "x.jsonl"}, {"name": "b", "path": "y.jsonl"}]) == {
        "a": "x.jsonl", "b": "y.jsonl"}
    with pytest.raises(InputError) as excinfo:
        checked_test_files([{"name": "a", "path": "x.jsonl"}, {"name": "a", "path": "y.jsonl"}])
    assert excinfo.value.field == "evaluate.test_files[1].name"
