"""The canonical dataset file (schemas/dataset.schema.json): read and check it."""

from __future__ import annotations

from calltune.data.records import read_records
from calltune.data.validate import instance_errors, raise_if_any
from calltune.errors import InputError
from calltune.params import load_schema

DATASET_SCHEMA = load_schema("dataset.schema.json")


def load_dataset(path) -> list[dict]:
    """Every line checked against the schema, ids unique; all problems reported together."""
    records, errors, first_line = [], [], {}
    for line, record in read_records(path):
        problems = instance_errors(record, DATASET_SCHEMA, path, line)
        if not problems and record["id"] in first_line:
            problems = [InputError(f"duplicate id (first at line {first_line[record['id']]})", path=path,
                                   line=line, field="id")]
        if problems:
            errors += problems
            continue
        first_line[record["id"]] = line
        records.append(record)
    raise_if_any(errors)
    return records
