"""Helpers for the data tests: small tool sets, file writers, stage loading, params files."""

from __future__ import annotations

import json
from pathlib import Path

from stage_helpers import ROOT, repo_params, stage_main  # noqa: F401 (re-exported)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1}},
        "required": ["location"]}}}
CALCULATOR = {"name": "calculator", "description": "Evaluate maths.",
              "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                             "required": ["expression"]}}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def tools_file(tmp_path: Path) -> Path:
    return write_json(tmp_path / "tools.json", [WEATHER, CALCULATOR])


def weather(location, **extra) -> dict:
    return {"name": "get_weather", "arguments": {"location": location, **extra}}



def errors_of(excinfo) -> list:
    """The individual InputErrors behind a raised InputError or InputErrors."""
    return getattr(excinfo.value, "errors", [excinfo.value])
