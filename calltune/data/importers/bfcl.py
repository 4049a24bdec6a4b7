"""Berkeley Function-Calling Leaderboard question files (JSON Lines) plus their possible-answer file.

question: [[{"role", "content"}, ...]] (one turn; multi-turn entries need a live environment and
are rejected); function: BFCL declarations ("dict"/"float"/"tuple"/"any" types become JSON Schema
"object"/"number"/"array"/unconstrained). ground_truth: [{name: {param: [acceptable values]}}]:
the first acceptable value is the target, and a parameter whose only acceptable value is ""
(meaning "may be left out") is left out. Names like "math.factorial" become "math_factorial".
Entries of the irrelevance categories have no answers: their target is no call.
"""

from __future__ import annotations

import re

from calltune.data.examples import Example
from calltune.data.importers.common import checked_tools, require
from calltune.data.importers.conversation import split_conversation
from calltune.data.records import read_records
from calltune.errors import InputError

QUESTION_SCHEMA = {
    "type": "object",
    "required": ["id", "question", "function"],
    "properties": {"id": {"type": "string"}, "question": {"type": "array", "minItems": 1},
                   "function": {"type": ["array", "object"]}},
}
ANSWER_SCHEMA = {
    "type": "object",
    "required": ["id", "ground_truth"],
    "properties": {"id": {"type": "string"},
                   "ground_truth": {"type": "array", "items": {"type": "object", "minProperties": 1,
                                                               "maxProperties": 1}}},
}
MESSAGE_SCHEMA = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "required": ["role", "content"],
              "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}},
}
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_IRRELEVANCE = re.compile(r"^(live_)?irrelevance")


def read(spec: dict) -> list[tuple[int, object]]:
    """Question records, each carrying its ground truth under "_ground_truth" (None if absent)."""
    truth = {}
    if spec.get("answers"):
        for line, raw in read_records(spec["answers"]):
            require(raw, ANSWER_SCHEMA, spec["answers"], line)
            truth[raw["id"]] = raw["ground_truth"]
    return [(line, {**raw, "_ground_truth": truth.get(raw.get("id"))}) if isinstance(raw, dict) else (line, raw)
            for line, raw in read_records(spec["path"])]


def to_example(raw, path, line):
    require(raw, QUESTION_SCHEMA, path, line)
    turns = raw["question"]
    turns = [turns] if isinstance(turns[0], dict) else turns
    if len(turns) != 1:
        raise InputError(f"multi-turn BFCL entries ({len(turns)} turns) are not supported", path=path, line=line,
                         field="question")
    require(turns[0], MESSAGE_SCHEMA, path, line, "question[0]")
    system, history, query, _ = split_conversation(turns[0], path, line)
    functions = raw["function"] if isinstance(raw["function"], list) else [raw["function"]]
    tools = checked_tools([bfcl_tool(f) for f in functions], path, line, "function")
    return Example(query=query, calls=_calls(raw, path, line), tools=tools, path=str(path), line=line,
                   system=system, history=history, calls_field="ground_truth")


def bfcl_tool(function):
    if not isinstance(function, dict):
        return function
    tool = {**function, "parameters": json_schema(function.get("parameters", {"type": "dict", "properties": {}}))}
    if isinstance(tool.get("name"), str):
        tool["name"] = safe_name(tool["name"])
    return tool


def json_schema(node):
    """BFCL's Python-flavoured schema as JSON Schema, recursively."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            mapped = _TYPES.get(value, value)
            if mapped:
                out["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    return out


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _calls(raw, path, line) -> list[dict]:
    truth = raw.get("_ground_truth")
    if truth is None:
        if _IRRELEVANCE.match(raw["id"]):
            return []
        raise InputError(f"no possible answer for id {raw['id']!r}: give the answers file (answers: ...)",
                         path=path, line=line, field="id")
    calls = []
    for entry in truth:
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise InputError("ground truth arguments must be an object", path=path, line=line, field="ground_truth")
        calls.append({"name": safe_name(name), "arguments": {
            param: chosen for param, values in params.items() if (chosen := _first_acceptable(values)) != ""}})
    return calls


def _first_acceptable(values):
    if not isinstance(values, list):
        return values
    return next((v for v in values if v != ""), "")
