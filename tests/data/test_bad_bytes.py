"""Bad bytes are bad input: every reader of a user file, fed any bytes, returns a result or raises an
InputError naming the file (and the line of the first byte that is not UTF-8), never another
exception, and writes nothing."""

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calltune.data.examples import load_examples
from calltune.data.templates import load_templates
from calltune.data.test_files import load_test_file
from calltune.data.tools import load_tools
from calltune.errors import InputError
from calltune.io import read_json, read_jsonl, read_text
from calltune.params import load_params
from data_helpers import ROOT, WEATHER, stage_main, repo_params, tools_file, weather, write_jsonl

TOOLS = [WEATHER]
EXAMPLES = b"".join(json.dumps(row).encode() + b"\n" for row in [
    {"query": "Weather in Oslo?", "calls": [weather("Oslo")]}, {"query": "Sing", "calls": []}])
TEMPLATES = yaml.safe_dump({"templates": [{"name": "w", "patterns": ["Weather in {city}?"],
                                           "slots": {"city": ["Lima", "Pune"]},
                                           "calls": [{"name": "get_weather", "arguments": {"location": "{city}"}}],
                                           "count": 2}]}).encode()
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def spoiled(valid: bytes):
    """Any bytes, or a valid file with a few bytes put somewhere in it (often not UTF-8)."""
    inserted = st.tuples(st.integers(0, len(valid)), st.binary(min_size=1, max_size=4)).map(
        lambda t: valid[:t[0]] + t[1] + valid[t[0]:])
    return st.one_of(st.binary(max_size=300), inserted)


def outcome(load, path: Path, data: bytes):
    """Write `data` to `path`, load it; only a result or an InputError naming `path` may come out,
    and the directory holds nothing new afterwards."""
    path.write_bytes(data)
    before = sorted(path.parent.rglob("*"))
    try:
        load(path)
    except InputError as e:
        assert str(path) in str(e), e
    assert sorted(path.parent.rglob("*")) == before


@pytest.fixture
def folder():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@FUZZ
@given(data=spoiled(json.dumps(TOOLS).encode()))
def test_tools_file(folder, data):
    outcome(load_tools, folder / "tools.json", data)


@FUZZ
@given(data=spoiled(EXAMPLES))
def test_examples_file(folder, data):
    outcome(lambda path: load_examples(path, TOOLS), folder / "examples.jsonl", data)


@FUZZ
@given(data=spoiled(TEMPLATES))
def test_templates_file(folder, data):
    outcome(lambda path: load_templates(path, TOOLS, seed=1), folder / "templates.yaml", data)


@FUZZ
@given(data=spoiled((ROOT / "params.yaml").read_bytes()[:1500]) | spoiled((ROOT / "params.yaml").read_bytes()))
def test_params_file(folder, data):
    outcome(load_params, folder / "params.yaml", data)


@FUZZ
@given(data=spoiled(EXAMPLES))
def test_test_file(folder, data):
    outcome(lambda path: load_test_file(path, "mine", TOOLS, [], "No tool fits."), folder / "test.jsonl", data)


@FUZZ
@given(data=spoiled(EXAMPLES))
def test_json_and_jsonl_readers(folder, data):
    outcome(read_json, folder / "file.json", data)
    outcome(lambda path: list(read_jsonl(path)), folder / "file.jsonl", data)


def test_the_error_names_the_line_of_the_first_bad_byte(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_bytes(EXAMPLES + b'{"query": "caf\xe9", "calls": []}\n' + b"\xff\n")
    with pytest.raises(InputError) as excinfo:
        load_examples(path, TOOLS)
    assert (excinfo.value.path, excinfo.value.line) == (str(path), 3)
    assert "not UTF-8" in excinfo.value.reason and "0xe9" in excinfo.value.reason
    path.write_bytes(b"\xef\xbb\xbf\x80")  # a BOM (3 bytes), then a stray continuation byte
    with pytest.raises(InputError, match=r":1: not UTF-8 text: byte 0x80 at column 4"):
        read_text(path)


generate_stage = stage_main("generate")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["tools", "examples", "templates", "params"]),
       at=st.floats(0, 1), bad=st.sampled_from([b"\xff", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\x80\x80"]))
def test_generate_stage_exits_2_names_the_file_and_writes_nothing(tiny_gemma_dir, which, at, bad):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"tools": tools_file(tmp), "examples": tmp / "examples.jsonl", "templates": tmp / "templates.yaml"}
        files["examples"].write_bytes(EXAMPLES)
        files["templates"].write_bytes(TEMPLATES)
        files["params"] = repo_params(tmp, generate={
            "tools": str(files["tools"]), "examples": str(files["examples"]), "templates": str(files["templates"]),
            "imports": [], "augment": {"enabled": False, "per_example": 0, "target_per_tool": 0},
            "no_call_share": 0}, model={"format": "auto"})
        valid = files[which].read_bytes()
        cut = int(at * len(valid))
        while cut < len(valid) and (valid[cut] & 0xC0) == 0x80:  # not inside a multi-byte character
            cut += 1
        files[which].write_bytes(valid[:cut] + bad + valid[cut:])
        out = tmp / "out" / "dataset.jsonl"
        result = CliRunner().invoke(generate_stage, ["--params", str(files["params"]), "--base-model",
                                                     str(tiny_gemma_dir), "--out", str(out),
                                                     "--metrics", str(tmp / "metrics" / "data.json")])
        assert result.exit_code == 2, result.output
        line = valid[:cut].count(b"\n") + 1
        assert f"error: {files[which]}:{line}: not UTF-8 text" in result.stderr
        assert not (tmp / "out").exists() and not (tmp / "metrics").exists()
