import json

import pytest

from calltune.data.examples import Example, load_examples, to_record
from calltune.data.tools import load_tools
from calltune.data.validate import instance_errors
from calltune.errors import InputError
from calltune.params import load_schema
from data_helpers import errors_of, tools_file, weather, write_jsonl

NO_CALL = "Sorry, no tool fits."


@pytest.fixture
def tools(tmp_path):
    return load_tools(tools_file(tmp_path))


def only_error(tmp_path, tools, rows):
    path = write_jsonl(tmp_path / "examples.jsonl", rows)
    with pytest.raises(InputError) as excinfo:
        load_examples(path, tools)
    (error,) = errors_of(excinfo)
    assert error.path == str(path)
    return error


def test_unknown_tool(tmp_path, tools):
    error = only_error(tmp_path, tools, [{"query": "q", "calls": [weather("Oslo")]},
                                         {"query": "book it", "calls": [{"name": "book_flight", "arguments": {}}]}])
    assert (error.line, error.field) == (2, "calls[0].name")
    assert "unknown tool 'book_flight' (known: calculator, get_weather)" in error.reason


def test_bad_argument_type(tmp_path, tools):
    error = only_error(tmp_path, tools, [{"query": "q", "calls": [weather("Oslo", days="three")]}])
    assert (error.line, error.field) == (1, "calls[0].arguments.days")
    assert "'three' is not of type 'integer'" in error.reason


def test_missing_required_argument(tmp_path, tools):
    error = only_error(tmp_path, tools, [{"query": "q", "calls": [weather("Oslo"), {"name": "calculator",
                                                                                      "arguments": {}}]}])
    assert (error.line, error.field) == (1, "calls[1].arguments")
    assert "'expression' is a required property" in error.reason


def test_bad_enum_value(tmp_path, tools):
    error = only_error(tmp_path, tools, [{"query": "q", "calls": [weather("Oslo", unit="kelvin")]}])
    assert (error.line, error.field) == (1, "calls[0].arguments.unit")
    assert "'kelvin' is not one of ['celsius', 'fahrenheit']" in error.reason


def test_malformed_json_line_gives_its_line_number(tmp_path, tools):
    error = only_error(tmp_path, tools, [{"query": "q", "calls": []}, "", '{"query": "q2", "calls": [}'])
    assert error.line == 3
    assert "invalid JSON" in error.reason


def test_undeclared_argument_passes_unless_the_tool_forbids_extras(tmp_path, tools):
    path = write_jsonl(tmp_path / "e.jsonl", [{"query": "q", "calls": [weather("Oslo", colour="red")]}])
    assert load_examples(path, tools)[0].calls[0]["arguments"]["colour"] == "red"
    tools[0]["function"]["parameters"]["additionalProperties"] = False
    error = only_error(tmp_path, tools, [{"query": "q", "calls": [weather("Oslo", colour="red")]}])
    assert (error.field, error.reason) == ("calls[0].arguments.colour", "unknown key")


@pytest.mark.parametrize("row, field, reason", [
    ({"query": "q", "calls": [], "extra": 1}, "extra", "unknown key"),
    ({"query": "   ", "calls": []}, "query", "does not match"),
    ({"calls": []}, None, "'query' is a required property"),
    ({"query": "q", "calls": [weather("Oslo")], "tool_results": [1, 2], "answer": "a"}, "tool_results",
     "2 tool result(s) for 1 call(s)"),
    ({"query": "q", "calls": [], "tool_results": []}, "tool_results", "tool_results without calls"),
    ({"query": "q", "calls": [weather("Oslo")], "tool_results": [{"t": 3}]}, "answer", "tool_results need an answer"),
    ({"query": "q", "calls": [weather("Oslo")], "answer": "It's 3 degrees"}, "answer", "needs tool_results"),
    ({"query": "q", "calls": [], "history": [{"role": "user", "content": "hi"}]}, "history",
     "history ends with a user message"),
    ({"query": "q", "calls": [], "history": [{"role": "assistant", "tool_calls": [weather("Oslo", unit="K")]},
                                            {"role": "assistant", "content": "ok"}]},
     "history[0].tool_calls[0].arguments.unit", "is not one of"),
    ({"query": "q", "calls": [], "history": [{"role": "tool", "name": "nope", "content": 1},
                                            {"role": "assistant", "content": "ok"}]}, "history[0].name",
     "unknown tool 'nope'"),
    ({"query": "q", "calls": [], "history": [{"role": "system", "content": "x"}]}, "history[0].role", "is not one of"),
])
def test_shape_problems(tmp_path, tools, row, field, reason):
    error = only_error(tmp_path, tools, [row])
    assert (error.line, error.field) == (1, field)
    assert reason in error.reason


def test_every_bad_line_is_reported_in_one_pass(tmp_path, tools):
    path = write_jsonl(tmp_path / "e.jsonl", [
        {"query": "a", "calls": [weather("Oslo", unit="kelvin")]},
        {"query": "b", "calls": [weather("Oslo")]},
        {"query": "c", "calls": [{"name": "nope", "arguments": {}}]},
        {"query": "d", "calls": [weather(3)]},
    ])
    with pytest.raises(InputError) as excinfo:
        load_examples(path, tools)
    assert [(e.line, e.field) for e in errors_of(excinfo)] == [
        (1, "calls[0].arguments.unit"), (3, "calls[0].name"), (4, "calls[0].arguments.location")]


def canonical(example: Example) -> dict:
    record = to_record(example, "ex-00001", NO_CALL)
    assert instance_errors(record, load_schema("dataset.schema.json"), "x") == []
    return record


def test_call_example_becomes_user_then_assistant_tool_calls(tools):
    record = canonical(Example("Weather in Oslo?", [weather("Oslo", unit="celsius")], tools, "e.jsonl", 7))
    assert record["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": {"location": "Oslo", "unit": "celsius"}}}]}]
    assert record["meta"] == {"source": "e.jsonl:7", "calls": ["get_weather"]}
    assert record["tools"] is tools and record["id"] == "ex-00001"


def test_no_call_example_ends_with_the_default_or_its_own_answer(tools):
    assert canonical(Example("Sing", [], tools, "e", 1))["messages"][-1] == {"role": "assistant", "content": NO_CALL}
    own = canonical(Example("Hi", [], tools, "e", 1, answer="Hello!"))
    assert own["messages"][-1] == {"role": "assistant", "content": "Hello!"} and own["meta"]["calls"] == []


def test_multi_turn_example_keeps_order_system_history_query_calls_results_answer(tools):
    history = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "tool_calls": [weather("Oslo")]},
               {"role": "tool", "name": "get_weather", "content": {"t": 4}},
               {"role": "assistant", "content": "4 degrees."}]
    example = Example("And Bergen and Tromsø?", [weather("Bergen"), weather("Tromsø")], tools, "e", 2,
                      system="Today is Monday.", history=history, tool_results=[{"t": 7}, "no data"],
                      answer="Bergen 7, Tromsø unknown.")
    messages = canonical(example)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user",
                                             "assistant", "tool", "tool", "assistant"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"location": "Oslo"}}
    assert messages[7] == {"role": "tool", "name": "get_weather", "content": {"t": 7}}
    assert messages[8]["content"] == "no data"
    assert messages[-1] == {"role": "assistant", "content": "Bergen 7, Tromsø unknown."}


def test_loaded_examples_round_trip_the_optional_fields(tmp_path, tools):
    row = {"system": "Today is 2025-06-10.", "query": "Oslo?", "calls": [weather("Oslo")],
           "tool_results": [{"t": 1}], "answer": "1 degree"}
    (example,) = load_examples(write_jsonl(tmp_path / "e.jsonl", [row]), tools)
    assert (example.system, example.tool_results, example.answer, example.line) == (
        "Today is 2025-06-10.", [{"t": 1}], "1 degree", 1)
    assert json.loads(json.dumps(canonical(example)))["messages"][0]["role"] == "system"


# --- accepted alternatives ----------------------------------------------------------------------------

def with_accept(call, accept):
    return {**call, "accept": accept}


def test_alternatives_become_the_records_accept_expected_value_first(tmp_path, tools):
    rows = [{"query": "Weather in Oslo and Lima?", "calls": [
        with_accept(weather("Oslo"), {"location": ["Oslo, Norway", "Oslo"], "unit": ["", "celsius"]}), weather("Lima")]},
            {"query": "Weather in Rome", "calls": [weather("Rome")]}]
    first, second = load_examples(write_jsonl(tmp_path / "e.jsonl", rows), tools)
    assert first.calls[0] == weather("Oslo")  # training sees the value in arguments only
    record = to_record(first, "ex-1", NO_CALL)
    assert record["accept"] == [{"location": ["Oslo", "Oslo, Norway"], "unit": ["", "celsius"]}, {}]
    assert instance_errors(record, load_schema("dataset.schema.json"), "x") == []
    assert "accept" not in to_record(second, "ex-2", NO_CALL)


@pytest.mark.parametrize("accept, field, reason", [
    ({"unit": ["kelvin"]}, "calls[0].accept.unit[0]", "'kelvin' is not one of ['celsius', 'fahrenheit']"),
    ({"days": ["celsius", 3, "four"]}, "calls[0].accept.days[0]", "'celsius' is not of type 'integer'"),
    ({"location": [""]}, "calls[0].accept.location[0]", "'' (may be left out) but 'location' is required"),
    ({"city": ["Oslo"]}, "calls[0].accept.city", "get_weather has no argument 'city'"),
    ({"location": []}, "calls[0].accept.location", "should be non-empty"),
    ({"location": "Oslo"}, "calls[0].accept.location", "'Oslo' is not of type 'array'"),
])
def test_bad_alternatives_name_the_line_and_field(tmp_path, tools, accept, field, reason):
    path = write_jsonl(tmp_path / "examples.jsonl", [{"query": "ok", "calls": [weather("Rome")]},
                                                    {"query": "q", "calls": [with_accept(weather("Oslo"), accept)]}])
    with pytest.raises(InputError) as excinfo:
        load_examples(path, tools)
    error = errors_of(excinfo)[0]
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    assert reason in error.reason
