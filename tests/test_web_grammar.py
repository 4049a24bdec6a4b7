"""calltune.web_grammar: the call grammar as JSON for the browser demo (web/grammar.js enforces it:
tests/constrain/test_fuzz.py, tests/export/test_node_client.py and test_browser.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from constrain.constrain_helpers import WEATHER

from calltune.web_grammar import web_grammar

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calltune.web_grammar", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def test_the_json_holds_both_grammars_of_every_rule():
    out = web_grammar(WEATHER, {"type": "function", "function": {"name": "get_weather"}})
    grammar, minimal = out["grammar"], out["minimal"]
    assert out["format"] == "functiongemma" and grammar["root"] in grammar["rules"]
    text = json.dumps(grammar)
    assert '"lit": "call:get_weather"' in text and '"token": "<start_function_call>"' in text
    assert '"C"' in text and '"days' in text and '"days' not in json.dumps(minimal)  # optional keys: full only
    assert "<escape>" in grammar["string_closers"][0]


def test_cli_writes_the_file_and_refuses_bad_tools(tmp_path):
    tools, out = tmp_path / "tools.json", tmp_path / "grammar.json"
    tools.write_text(json.dumps(WEATHER))
    done = run_cli(str(tools), "--out", str(out), "--tool-choice", "required")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == web_grammar(WEATHER, "required")
    tools.write_text('[{"name": "x", "parameters": {"type": "object", "properties": 3}}]')
    out.unlink()
    done = run_cli(str(tools), "--out", str(out))
    assert done.returncode == 2 and str(tools) in done.stderr and not out.exists()
    done = run_cli(str(tmp_path / "weather.json"), "--tool-choice", "get_weather")
    assert done.returncode == 2 and "weather.json" in done.stderr
    tools.write_text(json.dumps(WEATHER))
    done = run_cli(str(tools), "--tool-choice", "get_time")
    assert done.returncode == 2 and "not among" in done.stderr
