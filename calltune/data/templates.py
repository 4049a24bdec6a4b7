"""templates.yaml: patterns with {slot} placeholders expanded into examples, reproducibly.

Each template draws `count` distinct (pattern, slot values) combinations (all of them when
count is left out) with a random generator seeded by base.seed and the template's position, so
the same file and seed always give the same examples. Slot values are scalars or
{text, value}: `text` goes into the query, `value` into the arguments. An argument written as
exactly "{slot}" takes the value with its type (a number stays a number); null leaves it out.
"""

from __future__ import annotations

import math
import random
import re
import yaml

from calltune.data.examples import Example, example_errors
from calltune.data.records import read_input
from calltune.data.validate import instance_errors, raise_if_any
from calltune.errors import InputError
from calltune.io import parse_yaml
from calltune.params import load_schema

SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FILE_SCHEMA = load_schema("templates.schema.json")
TEMPLATE_SCHEMA = {**_FILE_SCHEMA["$defs"]["template"], "$defs": _FILE_SCHEMA["$defs"]}
# The file's outer shape; each template is then checked on its own, with its line.
_TOP_SCHEMA = {**_FILE_SCHEMA, "properties": {"templates": {"type": "array"}}}
_OMIT = object()


def load_templates(path, tools: list[dict], seed: int) -> list[Example]:
    """Expand every template of a templates.yaml file into checked Examples."""
    data, lines = _read_yaml(path)
    errors = instance_errors(data, _TOP_SCHEMA, path)
    raise_if_any(errors)
    examples, seen = [], set()
    for i, template in enumerate(data["templates"]):
        where, line = f"templates[{i}]", lines[i]
        problems = instance_errors(template, TEMPLATE_SCHEMA, path, line, where) or \
            _slot_errors(template, path, line, where)
        if problems:
            errors += problems
            continue
        for query, calls in expand(template, i, seed):
            example = Example(query=query, calls=calls, tools=tools, path=str(path), line=line, where=where,
                              system=template.get("system"), answer=template.get("answer"))
            examples.append(example)
            for error in example_errors(example):  # a bad slot value fails every draw: say it once
                if error.describe() not in seen:
                    seen.add(error.describe())
                    errors.append(error)
    raise_if_any(errors)
    return examples


def expand(template: dict, index: int, seed: int) -> list[tuple[str, list[dict]]]:
    """(query, calls) for `count` distinct combinations drawn with a seeded generator."""
    plans = _plans(template)
    total = sum(size for _, _, size in plans)
    rng = random.Random(f"calltune-templates:{seed}:{index}")
    picks = sorted(rng.sample(range(total), template.get("count", total)))
    return [_fill(template, *_decode(plans, template.get("slots", {}), k)) for k in picks]


def _plans(template: dict) -> list[tuple[str, list[str], int]]:
    slots = template.get("slots", {})
    plans = []
    for pattern in template["patterns"]:
        used = list(dict.fromkeys(SLOT.findall(pattern)))
        plans.append((pattern, used, math.prod(len(slots[s]) for s in used)))
    return plans


def _decode(plans, slots: dict, k: int) -> tuple[str, dict]:
    """The k-th combination: patterns one after another, each with its slots' values in mixed radix."""
    for pattern, used, size in plans:
        if k >= size:
            k -= size
            continue
        chosen = {}
        for name in reversed(used):
            k, digit = divmod(k, len(slots[name]))
            chosen[name] = slots[name][digit]
        return pattern, chosen
    raise IndexError("combination index out of range")


def _fill(template: dict, pattern: str, chosen: dict) -> tuple[str, list[dict]]:
    query = SLOT.sub(lambda m: str(_text(chosen[m[1]])), pattern)
    query = re.sub(r"\s+([?.!,;:])", r"\1", " ".join(query.split()))
    calls = [{"name": c["name"], "arguments": _fill_value(c["arguments"], chosen)} for c in template["calls"]]
    return query, calls


def _fill_value(value, chosen: dict):
    if isinstance(value, str):
        whole = SLOT.fullmatch(value)
        if whole:
            slot_value = _value(chosen[whole[1]])
            return _OMIT if slot_value is None else slot_value
        return SLOT.sub(lambda m: str(_value(chosen[m[1]])), value)
    if isinstance(value, dict):
        filled = {k: _fill_value(v, chosen) for k, v in value.items()}
        return {k: v for k, v in filled.items() if v is not _OMIT}
    if isinstance(value, list):
        return [v for v in (_fill_value(x, chosen) for x in value) if v is not _OMIT]
    return value


def _text(slot_value):
    return slot_value["text"] if isinstance(slot_value, dict) else slot_value


def _value(slot_value):
    return slot_value["value"] if isinstance(slot_value, dict) else slot_value


def _slot_errors(template: dict, path, line, where: str) -> list[InputError]:
    """Slots must be defined, used, and every slot the calls use must appear in every pattern."""
    slots = template.get("slots", {})
    in_calls = {name for call in template["calls"] for text in strings_in(call["arguments"])
                for name in SLOT.findall(text)}
    errors = []

    def error(field, reason):
        errors.append(InputError(reason, path=path, line=line, field=f"{where}.{field}"))

    for name in sorted(in_calls - set(slots)):
        error("calls", f"unknown slot {{{name}}}")
    mentioned = set()
    for j, pattern in enumerate(template["patterns"]):
        used = set(SLOT.findall(pattern))
        mentioned |= used
        for name in sorted(used - set(slots)):
            error(f"patterns[{j}]", f"unknown slot {{{name}}}")
        for name in sorted((in_calls & set(slots)) - used):
            error(f"patterns[{j}]", f"does not mention {{{name}}}, which the calls use: "
                                    "the query would not say what the arguments are")
    for name in sorted(set(slots) - mentioned):
        error(f"slots.{name}", "slot is used by no pattern")
    if not errors and "count" in template:
        total = sum(size for _, _, size in _plans(template))
        if template["count"] > total:
            error("count", f"count {template['count']} exceeds the {total} distinct combinations")
    return errors


def strings_in(value):
    """Every string in a JSON value (objects and lists searched through)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (dict, list)):
        for item in value.values() if isinstance(value, dict) else value:
            yield from strings_in(item)


def _read_yaml(path) -> tuple[object, list[int | None]]:
    """The parsed file and the line each entry of `templates` starts on."""
    text = read_input(path)
    data, root = parse_yaml(text, path, with_nodes=True)
    items = data.get("templates") if isinstance(data, dict) else None
    lines = [None] * len(items) if isinstance(items, list) else []
    for key, node in (root.value if isinstance(root, yaml.MappingNode) else []):
        if key.value == "templates" and isinstance(node, yaml.SequenceNode):
            lines = [item.start_mark.line + 1 for item in node.value]
    return data, lines
