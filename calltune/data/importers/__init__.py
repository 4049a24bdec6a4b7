"""Importers: public tool-calling datasets as Examples, checked like hand-written ones.

One module per format, each with `to_example(raw, path, line) -> Example` and optionally
`read(spec) -> [(line, raw)]` (default: the records of spec["path"], JSON array or JSON Lines).
"""

from __future__ import annotations

from calltune.data.examples import Example, example_errors
from calltune.data.importers import bfcl, openai, sharegpt, xlam
from calltune.data.records import read_records
from calltune.data.validate import collect, raise_if_any

FORMATS = {"openai": openai, "xlam": xlam, "bfcl": bfcl, "sharegpt": sharegpt}


def import_examples(spec: dict) -> tuple[list[Example], int]:
    """(examples, number skipped) for one `generate.imports` entry.

    Every record is checked; with `skip_invalid: true` a bad record is skipped (and counted)
    instead of failing the stage, for public datasets that carry some noise.
    """
    module = FORMATS[spec["format"]]
    reader = getattr(module, "read", None)
    records = reader(spec) if reader else read_records(spec["path"])
    if spec.get("limit"):
        records = records[: spec["limit"]]
    examples, errors, skipped = [], [], 0
    for line, raw in records:
        problems = []
        example = collect(problems, module.to_example, raw, spec["path"], line)
        if example is not None:
            problems += example_errors(example)
        if problems and spec.get("skip_invalid"):
            skipped += 1
        elif problems:
            errors += problems
        else:
            examples.append(example)
    raise_if_any(errors)
    return examples, skipped
