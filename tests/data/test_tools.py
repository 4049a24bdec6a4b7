import pytest

from calltune.data.tools import load_tools
from calltune.errors import InputError
from data_helpers import CALCULATOR, WEATHER, errors_of, write_json


def test_openai_and_bare_forms_normalise_to_openai_form(tmp_path):
    bare_minimal = {"name": "ping"}
    tools = load_tools(write_json(tmp_path / "t.json", [WEATHER, CALCULATOR, bare_minimal]))
    assert tools[0] == WEATHER
    assert tools[1] == {"type": "function", "function": CALCULATOR}
    assert tools[2] == {"type": "function", "function": {
        "name": "ping", "description": "", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("tool, field, reason", [
    ({"name": "get weather"}, "[0].name", "does not match"),
    ({"name": "9lives"}, "[0].name", "does not match"),
    ({"name": "x" * 65}, "[0].name", "does not match"),
    ({"name": "f", "paramters": {}}, "[0].paramters", "unknown key"),
    ({"name": "f", "parameters": {"type": "array"}}, "[0].parameters.type", "'object' was expected"),
    ({"type": "function", "function": {"name": "f", "parameters": {"type": "object",
      "properties": {"x": {"type": "strnig"}}}}}, "[0].function.parameters.properties.x.type", "not a valid JSON Schema"),
    ({"name": "f", "parameters": {"type": "object", "properties": {}, "required": ["x"]}},
     "[0].parameters.required", "'x' is not declared"),
    ({"type": "tool", "function": {"name": "f"}}, "[0].type", "'function' was expected"),
])
def test_bad_tool_names_file_line_field_and_reason(tmp_path, tool, field, reason):
    path = write_json(tmp_path / "t.json", [tool])
    with pytest.raises(InputError) as excinfo:
        load_tools(path)
    (error,) = errors_of(excinfo)
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    assert reason in error.reason


def test_duplicate_names_point_at_the_first_definition(tmp_path):
    path = write_json(tmp_path / "t.json", [CALCULATOR, WEATHER, {"type": "function", "function": CALCULATOR}])
    with pytest.raises(InputError) as excinfo:
        load_tools(path)
    (error,) = errors_of(excinfo)
    assert error.field == "[2].function.name"
    assert "duplicate tool name 'calculator' (first defined at line 2)" in error.reason


def test_all_problems_are_reported_in_one_pass(tmp_path):
    path = write_json(tmp_path / "t.json", [{"name": "a b"}, WEATHER, {"name": "f", "parameters": {"type": "string"}}])
    with pytest.raises(InputError) as excinfo:
        load_tools(path)
    assert [e.field for e in errors_of(excinfo)] == ["[0].name", "[2].parameters.type"]


def test_tools_file_must_be_a_list(tmp_path):
    path = write_json(tmp_path / "t.json", {"tools": [WEATHER]})
    with pytest.raises(InputError, match="expected a JSON list"):
        load_tools(path)
