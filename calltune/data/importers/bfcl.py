"""Berkeley Function-Calling Leaderboard question files (JSON Lines) plus their possible-answer file.

question: [[{"role", "content"}, ...]] (one turn; multi-turn entries need a live environment and
are rejected); function: BFCL declarations ("dict"/"float"/"tuple"/"any" types become JSON Schema
"object"/"number"/"array"/unconstrained). ground_truth: [{name: {param: [acceptable values]}}],
or, in the exec_* categories, Python call expressions ["f(a=1, b=[2])"] read with `ast` (no code
runs). The first acceptable value other than "" and None is the training target; a parameter with
no other value ("" = may be left out, None = the Python default) is left out, and so is one that
may be left out whose value the conversation never states (BFCL lists the Python default there:
`"gravity": ["", 9.81]` for "dropped from 100 m"; trained on, such rows teach a model to invent
values for optional arguments nobody asked about); nested dict answers are chosen the same way,
key by key. Names like "math.factorial" become "math_factorial".
Entries of the irrelevance categories have no answers: their target is no call.
"""

from __future__ import annotations

import ast
import re

from calltune.data.augment import stated
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
                   "ground_truth": {"type": "array", "items": {"oneOf": [
                       {"type": "object", "minProperties": 1, "maxProperties": 1}, {"type": "string"}]}}},
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
    said = "\n".join(message["content"] for message in turns[0])
    return Example(query=query, calls=_calls(raw, said, path, line), tools=tools, path=str(path), line=line,
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


def _calls(raw, said: str, path, line) -> list[dict]:
    truth = raw.get("_ground_truth")
    if truth is None:
        if _IRRELEVANCE.match(raw["id"]):
            return []
        raise InputError(f"no possible answer for id {raw['id']!r}: give the answers file (answers: ...)",
                         path=path, line=line, field="id")
    calls = []
    for entry in truth:
        if isinstance(entry, str):
            entry = call_expression(entry, path, line)
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise InputError("ground truth arguments must be an object", path=path, line=line, field="ground_truth")
        calls.append({"name": safe_name(name), "arguments": _chosen_arguments(params, said)})
    return calls


def _chosen_arguments(params: dict, said: str) -> dict:
    """{param: [acceptable values]} -> {param: the training target}. A parameter whose acceptable
    values are only "" or None (BFCL: "may be left out", "the Python default None") is left out,
    and so is one that may be left out whose chosen value `said` (the conversation) never states.
    A dict value holds acceptable-value lists again, one level down (BFCL's nested answers)."""
    return {param: _nested(chosen, said) for param, values in params.items()
            if (chosen := _first_acceptable(values, said)) is not _OMITTED}


def _nested(value, said: str):
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return _chosen_arguments(value, said)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_nested(v, said) for v in value]
    return value


def call_expression(text: str, path, line) -> dict:
    """An exec-category answer such as "f(n=20, p=0.6)" as {name: {param: [value]}}. The text is
    parsed, never run: arguments must be literals, given by keyword."""
    def bad(reason):
        return InputError(f"{reason}: {text[:80]!r}", path=path, line=line, field="ground_truth")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise bad("not a Python call expression") from None
    if not isinstance(node, ast.Call) or node.args or any(kw.arg is None for kw in node.keywords):
        raise bad("expected a call with keyword arguments only")
    try:
        args = {kw.arg: [_as_json(ast.literal_eval(kw.value))] for kw in node.keywords}
    except (ValueError, SyntaxError, TypeError, RecursionError):
        raise bad("arguments must be literal values") from None
    return {ast.unparse(node.func): args}


def _as_json(value):
    """Python literals as JSON values: tuples become lists (sets are not JSON)."""
    if isinstance(value, (tuple, list)):
        return [_as_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, bytes, complex)):
        raise TypeError(type(value).__name__)
    return value


_OMITTED = object()


def _first_acceptable(values, said: str):
    if not isinstance(values, list):
        return values
    chosen = next((v for v in values if not _may_omit(v)), _OMITTED)
    if chosen is not _OMITTED and any(_may_omit(v) for v in values) and not stated(chosen, said):
        return _OMITTED  # the default BFCL also accepts, never asked for
    return chosen


def _may_omit(value) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def accepted_arguments(params: dict) -> dict:
    """{param: [acceptable values]} -> {param: every concrete value BFCL's checker accepts}, the
    `accept` form of calltune.evaluate.metrics.judge. "" (may be left out) stays in the list; a
    nested dict answer ({key: [acceptable values]}, alone or in a list) becomes each dict it
    accepts, with a key whose value is "" left out of it."""
    return {param: [v for value in (values if isinstance(values, list) else [values]) for v in _concrete(value)]
            for param, values in params.items()}


def _concrete(value) -> list:
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        combos = [{}]
        for key, options in value.items():
            combos = [{**c, **({} if isinstance(o, str) and o == "" else {key: o})} for c in combos for o in options]
        return combos
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        combos = [[]]
        for item in value:
            combos = [c + [o] for c in combos for o in _concrete(item)]
        return combos
    return [value]
