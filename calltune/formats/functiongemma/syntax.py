"""FunctionGemma's value and declaration syntax: `{key:value}` with strings between <escape> tokens.

The Jinja template in template.py writes exactly the same text; keep them in step
(tests compare the two on golden and random inputs).
"""

from __future__ import annotations

from calltune.formats.messages import tool_function

ESCAPE = "<escape>"
# Stands in for the reference template's indentation before a JSON-string argument (golden case 7).
STRING_ARGUMENTS_INDENT = " " * 20


def sorted_items(mapping: dict):
    """Items in Jinja `dictsort` order (case-insensitive, stable), as the reference template sorts."""
    return sorted(mapping.items(), key=lambda item: item[0].lower())


def format_value(value) -> str:
    """A JSON value in call/response syntax: bare keys, <escape>-quoted strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return ESCAPE + value + ESCAPE
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{format_value(item)}" for key, item in sorted_items(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return str(value)


def format_arguments(arguments) -> str:
    """A call's argument object; a JSON-string argument is written raw, as the reference does."""
    if isinstance(arguments, str):
        return "{" + STRING_ARGUMENTS_INDENT + arguments + "}"
    return format_value(arguments) if isinstance(arguments, dict) else "{}"


def format_call(name: str, arguments) -> str:
    return f"<start_function_call>call:{name}{format_arguments(arguments)}<end_function_call>"


def format_response(name: str, response) -> str:
    body = response if isinstance(response, dict) else {"value": response}
    return f"<start_function_response>response:{name}{format_value(body)}<end_function_response>"


def format_schema(schema: dict, describe: bool = False, default_type: str = "") -> str:
    """A JSON Schema node; fields come in alphabetical order, which puts `type` last."""
    parts = []
    if describe or "description" in schema:
        parts.append(f"description:{ESCAPE}{schema.get('description', '')}{ESCAPE}")
    if "enum" in schema:
        parts.append(f"enum:{format_value(schema['enum'])}")
    if "items" in schema:
        parts.append(f"items:{format_schema(schema['items'])}")
    if schema.get("properties"):
        properties = ",".join(f"{name}:{format_schema(prop, describe=True)}"
                              for name, prop in sorted_items(schema["properties"]))
        parts.append("properties:{" + properties + "}")
    if schema.get("required"):
        parts.append(f"required:{format_value(schema['required'])}")
    parts.append(f"type:{format_type(schema.get('type', default_type))}")
    return "{" + ",".join(parts) + "}"


def format_type(schema_type) -> str:
    if isinstance(schema_type, list):
        return "[" + ",".join(ESCAPE + t.upper() + ESCAPE for t in schema_type) + "]"
    return ESCAPE + schema_type.upper() + ESCAPE


def format_declaration(tool: dict) -> str:
    function = tool_function(tool)
    parameters = format_schema(function.get("parameters") or {}, default_type="object")
    return (f"<start_function_declaration>declaration:{function['name']}"
            f"{{description:{ESCAPE}{function.get('description', '')}{ESCAPE},parameters:{parameters}}}"
            "<end_function_declaration>")
