"""xLAM / APIGen: {"query", "tools", "answers"} with tools and answers as JSON strings; the file is
a JSON array or JSON Lines.

xLAM parameters are {name: {"type": "str, optional", "description", "default"}} with Python type
names; they become a JSON Schema object. A parameter is required unless its type says optional
or it has a default. Tools already written as JSON Schema are kept as they are.
"""

from __future__ import annotations

import re

from calltune.data.examples import Example
from calltune.data.importers.common import checked_tools, loads_field, parse_call, require

RECORD_SCHEMA = {
    "type": "object",
    "required": ["query", "tools", "answers"],
    "properties": {"query": {"type": "string"}, "tools": {"type": ["string", "array"]},
                   "answers": {"type": ["string", "array"]}},
}
_PY_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
             "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array",
             "dict": "object", "object": "object"}
_OPTIONAL_SUFFIX = re.compile(r",\s*optional\s*$", re.IGNORECASE)


def to_example(raw, path, line):
    require(raw, RECORD_SCHEMA, path, line)
    tools = checked_tools([xlam_tool(t) for t in _list(raw, "tools", path, line)], path, line)
    calls = [parse_call(a, path, line, f"answers[{i}]") for i, a in enumerate(_list(raw, "answers", path, line))]
    return Example(query=raw["query"], calls=calls, tools=tools, path=str(path), line=line, calls_field="answers")


def xlam_tool(tool):
    params = tool.get("parameters") if isinstance(tool, dict) else None
    if not isinstance(params, dict) or params.get("type") == "object":
        return tool
    properties, required = {}, []
    for name, spec in params.items():
        spec = spec if isinstance(spec, dict) else {}
        schema, optional = python_type_schema(str(spec.get("type", "")))
        if spec.get("description"):
            schema = {"description": spec["description"], **schema}
        properties[name] = schema
        if not optional and "default" not in spec:
            required.append(name)
    parameters = {"type": "object", "properties": properties, **({"required": required} if required else {})}
    return {"name": tool.get("name"), "description": tool.get("description", ""), "parameters": parameters}


def python_type_schema(text: str) -> tuple[dict, bool]:
    """("List[int], optional") -> ({"type": "array", "items": {"type": "integer"}}, True)."""
    text = text.strip()
    optional = bool(_OPTIONAL_SUFFIX.search(text))
    text = _OPTIONAL_SUFFIX.sub("", text).strip()
    wrapped = re.fullmatch(r"Optional\[(.*)\]", text)
    if wrapped:
        optional, text = True, wrapped[1].strip()
    return _schema(text), optional


def _schema(text: str) -> dict:
    sequence = re.fullmatch(r"(?i)(?:list|set|tuple|sequence)\[(.*)\]", text)
    if sequence:
        items = _schema(sequence[1].strip())
        return {"type": "array", **({"items": items} if items else {})}
    if re.fullmatch(r"(?i)(?:dict|mapping)\[.*\]", text):
        return {"type": "object"}
    json_type = _PY_TYPES.get(text.lower())
    return {"type": json_type} if json_type else {}  # Any, Union[...]: no constraint


def _list(raw, key, path, line) -> list:
    value = loads_field(raw[key], path, line, key)
    require(value, {"type": "array"}, path, line, key)
    return value
