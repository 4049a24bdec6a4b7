"""Pieces every importer needs: JSON-in-a-string fields, call shapes, checked (and cached) tools."""

from __future__ import annotations

import ast
import json

from calltune.data.tools import check_tools
from calltune.data.validate import instance_errors, raise_if_any
from calltune.errors import InputError

CALL_SCHEMA = {
    "type": "object",
    "required": ["name", "arguments"],
    "properties": {"name": {"type": "string", "minLength": 1}, "arguments": {"type": "object"}},
}
_checked: dict[str, list[dict]] = {}
_CHECKED_MAX = 1024  # distinct valid tool lists remembered (a dataset of per-record tools can hold thousands)


def require(instance, schema: dict, path, line, prefix: str = "") -> None:
    raise_if_any(instance_errors(instance, schema, path, line, prefix))


def loads_field(value, path, line, field: str, loose: bool = False):
    """A field that may hold JSON as a string (xLAM, OpenAI arguments); `loose` also accepts the
    Python-literal dicts some datasets print (Hermes), via ast.literal_eval, which runs no code."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        if loose:
            try:
                return ast.literal_eval(value.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
        raise InputError(f"invalid JSON in string: {e.msg} (column {e.colno})", path=path, line=line,
                         field=field) from None


def parse_call(raw, path, line, field: str, loose: bool = False) -> dict:
    """{"name", "arguments": dict} from the OpenAI, bare or string-encoded forms of a call."""
    raw = loads_field(raw, path, line, field, loose)
    if isinstance(raw, dict) and isinstance(raw.get("function"), dict):
        raw = raw["function"]
    if isinstance(raw, dict):
        args = raw.get("arguments", raw.get("parameters", {}))
        raw = {**raw, "arguments": loads_field(args, path, line, f"{field}.arguments", loose)}
    require(raw, CALL_SCHEMA, path, line, field)
    return {"name": raw["name"], "arguments": raw["arguments"]}


def result_content(text):
    """A tool result: parsed when it is a JSON object or list, else the text itself."""
    if isinstance(text, str) and text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def checked_tools(raw_tools, path, line, prefix: str = "tools") -> list[dict]:
    """Validated OpenAI-form tools; records of one dataset mostly share a tool list, so a valid
    list is checked once."""
    if not isinstance(raw_tools, list):
        raise InputError("tools must be a list", path=path, line=line, field=prefix)
    key = json.dumps(raw_tools, sort_keys=True, default=str)
    if key not in _checked:
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked[key] = check_tools([(line, t) for t in raw_tools], path, prefix)
    return _checked[key]
