import json

import pytest

from calltune.data.generate import generate
from calltune.data.validate import instance_errors
from calltune.errors import InputError
from calltune.params import load_schema
from data_helpers import errors_of, tools_file, weather, write_jsonl

TEMPLATES = """\
templates:
  - patterns: ["Forecast for {city}"]
    slots: {city: [Lima, Pune, Graz]}
    calls: [{name: get_weather, arguments: {location: "{city}"}}]
"""


def inputs(tmp_path, examples=None, templates=TEMPLATES, imports=()):
    (tmp_path / "templates.yaml").write_text(templates, encoding="utf-8")
    rows = examples if examples is not None else [
        {"query": "Weather in Oslo?", "calls": [weather("Oslo")]},
        {"query": "Sing a song", "calls": []},
        {"query": "weather in OSLO", "calls": [weather("Oslo", unit="celsius")]},
        {"query": "Oslo and Bergen?", "calls": [weather("Oslo"), weather("Bergen")]},
    ]
    return {"tools": str(tools_file(tmp_path)), "examples": str(write_jsonl(tmp_path / "examples.jsonl", rows)),
            "templates": str(tmp_path / "templates.yaml") if templates else "", "imports": list(imports),
            "no_call_answer": "No tool fits.", "duplicate_queries": "warn"}


def xlam_import(tmp_path, answers):
    tools = [{"name": "get_weather", "description": "w", "parameters": {"location": {"type": "str"}}}]
    path = write_jsonl(tmp_path / "xlam.jsonl", [{"query": "Weather for Kobe", "tools": json.dumps(tools),
                                                  "answers": json.dumps(answers)}])
    return {"format": "xlam", "path": str(path)}


def test_all_inputs_become_valid_canonical_records_with_sequential_ids(tmp_path):
    spec = xlam_import(tmp_path, [{"name": "get_weather", "arguments": {"location": "Kobe"}}])
    result = generate(inputs(tmp_path, imports=[spec]), seed=0)
    assert result.sources == {"examples": 3, "templates": 3, "imports": 1}
    assert result.skipped == 0
    assert [r["id"] for r in result.records] == [f"ex-{i:05d}" for i in range(1, 8)]
    schema = load_schema("dataset.schema.json")
    assert all(instance_errors(r, schema, "x") == [] for r in result.records)
    assert [r["meta"]["calls"] for r in result.records][:3] == [["get_weather"], [], ["get_weather", "get_weather"]]
    assert result.records[1]["messages"][-1] == {"role": "assistant", "content": "No tool fits."}
    assert result.records[-1]["meta"]["source"] == f"{spec['path']}:1"


def test_duplicate_queries_warn_and_keep_the_first(tmp_path):
    gen = inputs(tmp_path)
    result = generate(gen, seed=0)
    (duplicate,) = result.duplicates
    assert (duplicate.path, duplicate.line, duplicate.field) == (gen["examples"], 3, "query")
    assert f"duplicate query (first at {gen['examples']}:1)" in duplicate.reason
    assert "weather in OSLO" not in [r["messages"][0]["content"] for r in result.records]


def test_duplicate_queries_error_mode_fails(tmp_path):
    with pytest.raises(InputError, match="duplicate query"):
        generate({**inputs(tmp_path), "duplicate_queries": "error"}, seed=0)


def test_problems_in_every_input_are_reported_together(tmp_path):
    bad_template = TEMPLATES.replace('{location: "{city}"}', '{location: "{city}", unit: kelvin}')
    spec = xlam_import(tmp_path, [{"name": "get_weather", "arguments": {"location": 5}}])
    gen = inputs(tmp_path, examples=[{"query": "q", "calls": [weather("Oslo", days=0)]}], templates=bad_template,
                 imports=[spec])
    with pytest.raises(InputError) as excinfo:
        generate(gen, seed=0)
    assert [(e.path, e.field) for e in errors_of(excinfo)] == [
        (gen["examples"], "calls[0].arguments.days"),
        (gen["templates"], "templates[0].calls[0].arguments.unit"),
        (spec["path"], "answers[0].arguments.location")]


def test_broken_tools_stop_before_examples_are_checked(tmp_path):
    gen = inputs(tmp_path, examples=[{"query": "q", "calls": [{"name": "nope", "arguments": {}}]}])
    (tmp_path / "tools.json").write_text('[{"name": "bad name"}]', encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        generate(gen, seed=0)
    assert [e.path for e in errors_of(excinfo)] == [gen["tools"]]


def test_templates_are_optional(tmp_path):
    assert generate(inputs(tmp_path, templates=""), seed=0).sources["templates"] == 0
