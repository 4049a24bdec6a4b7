"""Held-out test files (evaluate.test_files): your own queries in the examples.jsonl format, scored
by every target next to the test split and never trained on.

A test file is checked like data/examples.jsonl (schema, known tools, valid arguments and accepted
alternatives; every problem with its file, line and field), and against the training data: a
query that is also in the train or valid split (same normalised text, see text.query_key) would
measure memory, not skill, so it is an error naming both places.
"""

from __future__ import annotations

from calltune.data.dataset import load_dataset
from calltune.data.examples import load_examples, to_record
from calltune.data.records import read_input
from calltune.data.text import query_key
from calltune.data.validate import raise_if_any
from calltune.errors import InputError


def load_test_file(path, name: str, tools: list[dict], training: list, no_call_answer: str) -> list[dict]:
    """Canonical records (ids "<name>:<line>") of a test file that shares no query with the
    canonical dataset files in `training`."""
    examples = load_examples(path, tools)
    if not examples:
        raise InputError("no test examples", path=path)
    seen = {}
    for train_path in training:
        for line, record in _lines(train_path):
            seen.setdefault(query_key(record["messages"]), (train_path, line, record))
    errors, records, first = [], [], {}
    for example in examples:
        record = to_record(example, f"{name}:{example.line}", no_call_answer)
        key = query_key(record["messages"])
        if key in seen:
            train_path, line, other = seen[key]
            errors.append(InputError(f"the same query is in the training data: {train_path}:{line} "
                                     f"(id {other['id']}, from {other['meta']['source']})",
                                     path=path, line=example.line, field="query"))
        elif key in first:
            errors.append(InputError(f"duplicate query (first at line {first[key]})", path=path, line=example.line,
                                     field="query"))
        first.setdefault(key, example.line)
        records.append(record)
    raise_if_any(errors)
    return records


def _lines(path) -> list[tuple[int, dict]]:
    """(line, record) of a canonical dataset file (records are validated by load_dataset)."""
    records = load_dataset(path)
    lines = [i for i, text in enumerate(read_input(path).splitlines(), start=1)
             if text.strip()]
    return list(zip(lines, records))


def checked_test_files(specs: list[dict]) -> dict[str, str]:
    """{name: path} of evaluate.test_files; two files of one name would overwrite each other's metrics."""
    names = {}
    for i, spec in enumerate(specs):
        if spec["name"] in names:
            raise InputError(f"test file name {spec['name']!r} used twice (evaluate.test_files[{i}] and "
                             f"an earlier one): names key the metrics files", field=f"evaluate.test_files[{i}].name")
        names[spec["name"]] = spec["path"]
    return names
