"""Tool definitions: read, validate and normalise to the OpenAI function-tool form."""

from __future__ import annotations

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from calltune.data.records import read_records
from calltune.data.validate import instance_errors, join_field, raise_if_any
from calltune.errors import InputError
from calltune.params import load_schema

_FILE_SCHEMA = load_schema("tools.schema.json")
TOOL_SCHEMA = {**_FILE_SCHEMA["$defs"]["tool"], "$defs": _FILE_SCHEMA["$defs"]}
EMPTY_PARAMETERS = {"type": "object", "properties": {}}


def load_tools(path) -> list[dict]:
    """The tools of a tools.json file (a JSON list), validated, in OpenAI form."""
    return check_tools(read_records(path, array_only=True), path)


def check_tools(located: list[tuple[int | None, object]], path, prefix: str = "") -> list[dict]:
    """Validate (line, raw tool) pairs; all problems are raised together as InputErrors."""
    errors, tools, first_line = [], [], {}
    for i, (line, raw) in enumerate(located):
        field = f"{prefix}[{i}]"
        problems = instance_errors(raw, TOOL_SCHEMA, path, line, field)
        if problems:
            errors.extend(problems)
            continue
        tool = normalise_tool(raw)
        name = tool["function"]["name"]
        errors.extend(parameters_errors(tool["function"]["parameters"], path, line, _name_field(raw, field)))
        if name in first_line:
            errors.append(InputError(f"duplicate tool name {name!r} (first defined at line {first_line[name]})",
                                     path=path, line=line, field=join_field(_name_field(raw, field), "name")))
        first_line.setdefault(name, line)
        tools.append(tool)
    raise_if_any(errors)
    return tools


def normalise_tool(raw: dict) -> dict:
    fn = raw.get("function", raw)
    return {"type": "function", "function": {
        "name": fn["name"],
        "description": fn.get("description", ""),
        "parameters": fn.get("parameters", EMPTY_PARAMETERS),
    }}


def parameters_errors(parameters: dict, path, line, tool_field: str | None) -> list[InputError]:
    """The parameters must be a valid JSON Schema whose `required` names declared properties."""
    field = join_field(tool_field or "", "parameters")
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as e:
        where = join_field(field, ".".join(map(str, e.path)))
        return [InputError(f"not a valid JSON Schema: {e.message}", path=path, line=line, field=where)]
    declared = parameters.get("properties", {})
    return [InputError(f"required parameter {name!r} is not declared in properties", path=path, line=line,
                       field=f"{field}.required")
            for name in parameters.get("required", []) if name not in declared]


def tools_by_name(tools: list[dict]) -> dict[str, dict]:
    return {t["function"]["name"]: t for t in tools}


def _name_field(raw: dict, field: str) -> str:
    return f"{field}.function" if "function" in raw else field
