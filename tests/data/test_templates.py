import textwrap

import pytest

from calltune.data.templates import expand, load_templates
from calltune.data.tools import load_tools
from calltune.errors import InputError
from data_helpers import errors_of, tools_file

WEATHER_TEMPLATE = """\
templates:
  - name: weather
    patterns:
      - "Weather in {city}{unit}?"
      - "Is it warm in {city}{unit}"
    slots:
      city: [Oslo, Lima, Pune, Graz, Hue]
      unit:
        - {text: "", value: null}
        - {text: " in Celsius", value: celsius}
    calls:
      - name: get_weather
        arguments: {location: "{city}", unit: "{unit}"}
    count: 7
  - patterns: ["{n}-day forecast for {city}"]
    slots:
      n: [2, 3]
      city: [Oslo]
    calls:
      - name: get_weather
        arguments: {location: "{city}", days: "{n}"}
"""


@pytest.fixture
def tools(tmp_path):
    return load_tools(tools_file(tmp_path))


def write(tmp_path, text):
    path = tmp_path / "templates.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_expansion_is_deterministic_for_a_seed_and_changes_with_it(tmp_path, tools):
    path = write(tmp_path, WEATHER_TEMPLATE)
    first = [(e.query, e.calls) for e in load_templates(path, tools, seed=1)]
    assert first == [(e.query, e.calls) for e in load_templates(path, tools, seed=1)]
    others = {tuple(q for q, _ in ((e.query, e.calls) for e in load_templates(path, tools, seed=s))) for s in range(2, 8)}
    assert any(o != tuple(q for q, _ in first) for o in others)


def test_count_draws_distinct_combinations_and_default_is_all(tmp_path, tools):
    examples = load_templates(write(tmp_path, WEATHER_TEMPLATE), tools, seed=3)
    weather, forecast = examples[:7], examples[7:]
    assert len({e.query for e in weather}) == 7
    assert [(e.query, e.calls[0]["arguments"]) for e in forecast] == [
        ("2-day forecast for Oslo", {"location": "Oslo", "days": 2}),
        ("3-day forecast for Oslo", {"location": "Oslo", "days": 3})]


def test_text_goes_to_the_query_value_to_the_arguments_and_null_leaves_it_out(tmp_path, tools):
    template = {"patterns": ["Weather in {city}{unit}?"], "slots": {
        "city": ["Oslo"], "unit": [{"text": "", "value": None}, {"text": " in Celsius", "value": "celsius"}]},
        "calls": [{"name": "get_weather", "arguments": {"location": "{city}", "unit": "{unit}"}}]}
    assert expand(template, 0, seed=0) == [
        ("Weather in Oslo?", [{"name": "get_weather", "arguments": {"location": "Oslo"}}]),
        ("Weather in Oslo in Celsius?", [{"name": "get_weather", "arguments": {"location": "Oslo", "unit": "celsius"}}]),
    ]


def test_slots_inside_longer_strings_are_interpolated(tmp_path, tools):
    template = {"patterns": ["calc {a} plus {b}"], "slots": {"a": [2], "b": [3.5]},
                "calls": [{"name": "calculator", "arguments": {"expression": "{a} + {b}"}}]}
    assert expand(template, 0, seed=0) == [("calc 2 plus 3.5", [{"name": "calculator",
                                                                  "arguments": {"expression": "2 + 3.5"}}])]


def test_expanded_examples_carry_template_line_and_no_call_answer(tmp_path, tools):
    path = write(tmp_path, """\
        templates:
          - patterns: ["Please {do}"]
            slots: {do: [dance, sing]}
            calls: []
            answer: "I can't do that."
            system: "Be brief."
    """)
    examples = load_templates(path, tools, seed=0)
    assert [(e.query, e.calls, e.answer, e.system, e.source) for e in examples] == [
        ("Please dance", [], "I can't do that.", "Be brief.", f"{path}:2"),
        ("Please sing", [], "I can't do that.", "Be brief.", f"{path}:2")]


@pytest.mark.parametrize("body, field, reason", [
    ('patterns: ["Weather in {town}"]\n    slots: {city: [Oslo]}\n    calls: []', "templates[1].patterns[0]",
     "unknown slot {town}"),
    ('patterns: ["Weather please"]\n    slots: {city: [Oslo]}\n    calls: [{name: get_weather, arguments: {location: "{city}"}}]',
     "templates[1].patterns[0]", "does not mention {city}"),
    ('patterns: ["Weather in {city}"]\n    slots: {city: [Oslo], unit: [celsius]}\n    calls: []', "templates[1].slots.unit",
     "used by no pattern"),
    ('patterns: ["Weather in {city}"]\n    slots: {city: [Oslo, Lima]}\n    calls: []\n    count: 3', "templates[1].count",
     "exceeds the 2 distinct combinations"),
    ('patterns: ["Weather in {city}"]\n    slots: {city: [Oslo]}\n    calls: [{name: get_weather, arguments: {location: "{city}", unit: "{city}"}}]',
     "templates[1].calls[0].arguments.unit", "'Oslo' is not one of"),
    ('patterns: ["Hi {x}"]\n    slots: {x: [a]}\n    calls: [{name: get_weather, arguments: {location: "{y}"}}]',
     "templates[1].calls", "unknown slot {y}"),
    ('patterns: []\n    calls: []', "templates[1].patterns", "should be non-empty"),
    ('patterns: ["x"]\n    calls: []\n    colour: red', "templates[1].colour", "unknown key"),
])
def test_template_errors_name_line_and_field(tmp_path, tools, body, field, reason):
    path = write(tmp_path, 'templates:\n  - patterns: ["fine"]\n    calls: []\n  - ' + body + "\n")
    with pytest.raises(InputError) as excinfo:
        load_templates(path, tools, seed=0)
    errors = errors_of(excinfo)
    assert {(e.path, e.line) for e in errors} == {(str(path), 4)}
    assert any(e.field == field and reason in e.reason for e in errors), [e.describe() for e in errors]


def test_a_bad_slot_value_is_reported_once_not_per_draw(tmp_path, tools):
    path = write(tmp_path, """\
        templates:
          - patterns: ["{d} days in {c}"]
            slots: {d: [0], c: [Oslo, Lima, Pune]}
            calls: [{name: get_weather, arguments: {location: "{c}", days: "{d}"}}]
    """)
    with pytest.raises(InputError) as excinfo:
        load_templates(path, tools, seed=0)
    assert len(errors_of(excinfo)) == 1 and "less than the minimum of 1" in errors_of(excinfo)[0].reason


def test_yaml_syntax_error_names_its_line(tmp_path, tools):
    path = write(tmp_path, "templates:\n  - patterns: [\"a\"\n    calls: []\n")
    with pytest.raises(InputError, match="invalid YAML") as excinfo:
        load_templates(path, tools, seed=0)
    assert excinfo.value.line == 3


def test_top_level_must_hold_a_templates_list(tmp_path, tools):
    with pytest.raises(InputError) as excinfo:
        load_templates(write(tmp_path, "templates: {a: 1}\n"), tools, seed=0)
    assert excinfo.value.field == "templates"
