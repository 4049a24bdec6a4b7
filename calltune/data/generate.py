"""The generate stage's work: tools, examples, templates and imports into canonical records.

Everything is checked before anything is returned: all problems of all inputs come back together
as one InputErrors, so a user fixes a file in one round and the stage writes nothing meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calltune.data.examples import Example, load_examples, to_record
from calltune.data.importers import import_examples
from calltune.data.templates import load_templates
from calltune.data.text import query_key
from calltune.data.tools import load_tools
from calltune.data.validate import collect, raise_if_any
from calltune.errors import InputError


@dataclass
class Generated:
    records: list[dict]
    duplicates: list[InputError]  # repeated queries, reported and dropped (duplicate_queries: warn)
    sources: dict[str, int]  # examples kept from each kind of input
    skipped: int  # invalid import records skipped (skip_invalid: true)


def generate(gen: dict, seed: int, synthetic=None) -> Generated:
    """`gen` is the generate block of params.yaml; `seed` drives template expansion. `synthetic`, the
    synthesize stage's examples file, is merged last, as one more source, when given."""
    errors: list[InputError] = []
    tools = collect(errors, load_tools, gen["tools"])
    raise_if_any(errors)  # examples cannot be checked without their tools
    inputs = {"examples": collect(errors, load_examples, gen["examples"], tools) or [], "templates": [],
              "imports": []}
    if gen["templates"]:
        inputs["templates"] = collect(errors, load_templates, gen["templates"], tools, seed) or []
    skipped = 0
    for spec in gen["imports"]:
        imported = collect(errors, import_examples, spec)
        if imported:
            inputs["imports"] += imported[0]
            skipped += imported[1]
    if synthetic is not None:
        inputs["synthetic"] = collect(errors, _load_synthetic, synthetic, tools) or []
    raise_if_any(errors)
    kept, duplicates = _drop_duplicates([(kind, ex) for kind, exs in inputs.items() for ex in exs],
                                        gen["no_call_answer"])
    if gen["duplicate_queries"] == "error":
        raise_if_any(duplicates)
    records = []
    for i, (_, record) in enumerate(kept, start=1):
        record["id"] = f"ex-{i:05d}"
        records.append(record)
    sources = {kind: sum(1 for k, _ in kept if k == kind) for kind in inputs}
    return Generated(records, duplicates, sources, skipped)


def _load_synthetic(path, tools: list[dict]) -> list[Example]:
    if not Path(path).is_file():
        raise InputError("file not found: run the synthesize stage first (dvc repro synthesize)", path=path)
    return load_examples(path, tools)


def _drop_duplicates(examples: list[tuple[str, Example]], no_call_answer: str):
    """Keep the first example of each query (see text.query_key); report the others."""
    first: dict[str, Example] = {}
    kept, duplicates = [], []
    for kind, example in examples:
        record = to_record(example, "", no_call_answer)
        key = query_key(record["messages"])
        if key in first:
            duplicates.append(InputError(f"duplicate query (first at {first[key].source})", path=example.path,
                                         line=example.line, field=example.at("query")))
            continue
        first[key] = example
        kept.append((kind, record))
    return kept, duplicates
