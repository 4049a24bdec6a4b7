"""The generate stage's work: tools, examples, templates and imports into canonical records,
then rows augmented from the hand-written examples (calltune.data.augment) and requests from the
built-in no-call bank (calltune.data.nocall).

Everything is checked before anything is returned: all problems of all inputs come back together
as one InputErrors, so a user fixes a file in one round and the stage writes nothing meanwhile.
Records keep the input order (examples, templates, imports, synthetic), then augmented rows, then
bank rows, so adding augmentation never renumbers the rows of your own inputs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import calltune
from calltune.data.augment import augment
from calltune.data.examples import Example, load_examples, to_record
from calltune.data.importers import import_examples
from calltune.data.nocall import BANK_FILE, draw_no_calls, needed
from calltune.data.templates import load_templates
from calltune.data.text import normalise_text, query_key
from calltune.data.tools import load_tools
from calltune.data.validate import collect, raise_if_any
from calltune.errors import InputError

OFF = {"enabled": False}  # generate.augment when a caller's block leaves it out (params.yaml turns it on)
# Where no-call bank rows say they came from (meta.source), relative to the package's parent.
BANK_SOURCE = BANK_FILE.relative_to(Path(calltune.__file__).resolve().parent.parent).as_posix()


@dataclass
class Generated:
    records: list[dict]
    duplicates: list[InputError]  # repeated queries, reported and dropped (duplicate_queries: warn)
    sources: dict[str, int]  # rows from each kind of input (augmented / no_call_bank when switched on)
    skipped: int  # invalid import records skipped (skip_invalid: true)
    report: dict = field(default_factory=dict)  # augment_* and no_call_bank_* counts for metrics/data.json


def generate(gen: dict, seed: int, synthetic=None) -> Generated:
    """`gen` is the generate block of params.yaml; `seed` drives template expansion, augmentation
    and the no-call bank draw. `synthetic`, the synthesize stage's examples file, is merged after
    the other inputs, as one more source, when given. A block without `augment` or
    `no_call_share` adds neither (params.yaml has both on)."""
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
    rows = [(kind, record) for kind, _, record in kept]
    taken = {query_key(record["messages"]) for _, record in rows}
    augment_spec, share = gen.get("augment", OFF), gen.get("no_call_share", 0)
    origins, report = _add_augmented(rows, kept, augment_spec, seed, taken, gen["no_call_answer"])
    if share > 0:
        report |= _add_no_calls(rows, tools, share, seed, taken, gen["no_call_answer"])

    records = []
    for i, (_, record) in enumerate(rows, start=1):
        record["id"] = f"ex-{i:05d}"
        records.append(record)
    for row, source in origins:
        records[row]["meta"]["origin"] = records[source]["id"]
    added = [kind for kind, on in (("augmented", augment_spec["enabled"]), ("no_call_bank", share > 0)) if on]
    sources = {kind: sum(1 for k, _ in rows if k == kind) for kind in [*inputs, *added]}
    return Generated(records, duplicates, sources, skipped, report)


def _add_augmented(rows: list, kept: list, spec: dict, seed: int, taken: set, no_call_answer: str):
    """Append rows augmented from the hand-written examples; return (row index, source row index)
    pairs for meta.origin and the augment_* counts."""
    written = [(i, example) for i, (kind, example, _) in enumerate(kept) if kind == "examples"]
    calling = Counter(name for _, record in rows for name in set(record["meta"]["calls"]))
    augmented = augment([example for _, example in written], [example for _, example, _ in kept], spec, seed,
                        calling, taken)
    origins = []
    for source, example in augmented.rows:
        rows.append(("augmented", to_record(example, "", no_call_answer)))
        origins.append((len(rows) - 1, written[source][0]))
    return origins, {f"augment_{k}": v for k, v in augmented.stats.items()}


def _add_no_calls(rows: list, tools: list[dict], share: float, seed: int, taken: set, no_call_answer: str) -> dict:
    """Append no-call bank requests until no-call rows are `share` of all rows; return the counts."""
    n_no_call = sum(not record["meta"]["calls"] for _, record in rows)
    draw = draw_no_calls(tools, needed(len(rows), n_no_call, share), seed, taken, normalise_text)
    for request in draw.requests:
        example = Example(query=request.text, calls=[], tools=tools, path=BANK_SOURCE, line=request.line)
        rows.append(("no_call_bank", to_record(example, "", no_call_answer)))
    return {"no_call_bank_available": draw.available, "no_call_bank_filtered": draw.dropped,
            "no_call_bank_filtered_sections": len(draw.dropped_sections)}


def _load_synthetic(path, tools: list[dict]) -> list[Example]:
    if not Path(path).is_file():
        raise InputError("file not found: run the synthesize stage first (dvc repro synthesize)", path=path)
    return load_examples(path, tools)


def _drop_duplicates(examples: list[tuple[str, Example]], no_call_answer: str):
    """Keep the first example of each query (see text.query_key); report the others.
    Returns [(kind, example, record)] and the duplicates."""
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
        kept.append((kind, example, record))
    return kept, duplicates
