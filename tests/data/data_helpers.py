"""Helpers for the data tests: small tool sets, file writers, stage loading, params files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

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


def load_stage(name: str):
    """The click command of stages/NAME.py."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def params_file(tmp_path: Path, **blocks) -> Path:
    """The repository's params.yaml with some blocks' keys replaced, written to tmp_path."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for block, values in blocks.items():
        params[block].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def errors_of(excinfo) -> list:
    """The individual InputErrors behind a raised InputError or InputErrors."""
    return getattr(excinfo.value, "errors", [excinfo.value])
