import json

import pytest

from calltune.data.examples import to_record
from calltune.data.importers import import_examples
from calltune.data.validate import instance_errors
from calltune.errors import InputError
from calltune.params import load_schema
from data_helpers import CALCULATOR, WEATHER, errors_of, write_json, write_jsonl


def imported(spec, expect_skipped=0):
    examples, skipped = import_examples(spec)
    assert skipped == expect_skipped
    for example in examples:  # every import becomes a valid canonical record
        record = to_record(example, "ex-1", "no tool")
        assert instance_errors(record, load_schema("dataset.schema.json"), "x") == []
    return examples


# --- OpenAI chat fine-tuning JSONL ---------------------------------------------------------------

OPENAI_CALL = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "weight": 0},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo "}, {"type": "text", "text": "in C?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Oslo\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 4}"},
        {"role": "assistant", "content": "It's 4°C."},
    ],
    "tools": [WEATHER, {"type": "function", "function": CALCULATOR}],
}
OPENAI_NO_CALL = {"messages": [{"role": "user", "content": "Sing"}, {"role": "assistant", "content": "I can't."}],
                  "tools": [WEATHER]}


def test_openai_conversation_becomes_history_query_calls_results_answer(tmp_path):
    path = write_jsonl(tmp_path / "ft.jsonl", [OPENAI_CALL, OPENAI_NO_CALL])
    call, no_call = imported({"format": "openai", "path": str(path)})
    assert call.system == "You are helpful."
    assert call.history == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert call.query == "Weather in Oslo in C?"
    assert call.calls == [{"name": "get_weather", "arguments": {"location": "Oslo", "unit": "celsius"}}]
    assert (call.tool_results, call.answer) == ([{"temperature": 4}], "It's 4°C.")
    assert [t["function"]["name"] for t in call.tools] == ["get_weather", "calculator"]
    assert (no_call.calls, no_call.answer, no_call.line) == ([], "I can't.", 2)


def test_openai_bad_arguments_json_and_unknown_tool_name_their_lines(tmp_path):
    bad_json = json.loads(json.dumps(OPENAI_CALL))
    bad_json["messages"][4]["tool_calls"][0]["function"]["arguments"] = "{\"location\": "
    unknown = json.loads(json.dumps(OPENAI_CALL))
    unknown["messages"][4]["tool_calls"][0]["function"]["name"] = "get_wether"
    path = write_jsonl(tmp_path / "ft.jsonl", [OPENAI_NO_CALL, bad_json, unknown])
    with pytest.raises(InputError) as excinfo:
        import_examples({"format": "openai", "path": str(path)})
    first, second = errors_of(excinfo)
    assert (first.line, first.field) == (2, "messages[4].tool_calls[0].arguments")
    assert "invalid JSON in string" in first.reason
    assert (second.line, second.field) == (3, "calls[0].name") and "unknown tool 'get_wether'" in second.reason


def test_openai_second_round_of_calls_is_rejected(tmp_path):
    record = json.loads(json.dumps(OPENAI_CALL))
    record["messages"][-1] = record["messages"][4]
    with pytest.raises(InputError, match="more than one round of tool calls"):
        import_examples({"format": "openai", "path": str(write_jsonl(tmp_path / "ft.jsonl", [record]))})


# --- xLAM / APIGen ------------------------------------------------------------------------------

XLAM_TOOLS = [{"name": "search_hotels", "description": "Find hotels.", "parameters": {
    "city": {"description": "City name", "type": "str"},
    "max_price": {"description": "Price cap", "type": "float, optional", "default": 200},
    "stars": {"description": "Star ratings", "type": "List[int]", "default": [3, 4]},
    "pets": {"description": "Pets allowed", "type": "Optional[bool]"}}}]


def xlam_record(query, answers):
    return {"id": 1, "query": query, "tools": json.dumps(XLAM_TOOLS), "answers": json.dumps(answers)}


def test_xlam_json_array_with_string_fields_and_python_types(tmp_path):
    path = write_json(tmp_path / "xlam.json", [
        xlam_record("Hotels in Rome under 150", [{"name": "search_hotels", "arguments": {"city": "Rome",
                                                                                        "max_price": 150}}]),
        xlam_record("Tell me a joke", []),
    ])
    hotels, joke = imported({"format": "xlam", "path": str(path)})
    assert hotels.calls == [{"name": "search_hotels", "arguments": {"city": "Rome", "max_price": 150}}]
    assert (hotels.line, joke.line, joke.calls) == (2, 8, [])
    assert hotels.tools[0]["function"]["parameters"] == {"type": "object", "properties": {
        "city": {"description": "City name", "type": "string"},
        "max_price": {"description": "Price cap", "type": "number"},
        "stars": {"description": "Star ratings", "type": "array", "items": {"type": "integer"}},
        "pets": {"description": "Pets allowed", "type": "boolean"}}, "required": ["city"]}


def test_xlam_bad_argument_type_names_answers_field_and_skip_invalid_counts_it(tmp_path):
    rows = [xlam_record("Hotels in Rome", [{"name": "search_hotels", "arguments": {"city": "Rome", "max_price": "cheap"}}]),
            xlam_record("Hotels in Oslo", [{"name": "search_hotels", "arguments": {"city": "Oslo"}}])]
    path = write_jsonl(tmp_path / "xlam.jsonl", rows)
    with pytest.raises(InputError) as excinfo:
        import_examples({"format": "xlam", "path": str(path)})
    (error,) = errors_of(excinfo)
    assert (error.line, error.field) == (1, "answers[0].arguments.max_price")
    (kept,) = imported({"format": "xlam", "path": str(path), "skip_invalid": True}, expect_skipped=1)
    assert kept.query == "Hotels in Oslo"


def test_xlam_limit_reads_only_the_first_records(tmp_path):
    path = write_jsonl(tmp_path / "xlam.jsonl", [xlam_record(f"Hotels in city {i}", []) for i in range(5)])
    assert [e.query for e in imported({"format": "xlam", "path": str(path), "limit": 2})] == [
        "Hotels in city 0", "Hotels in city 1"]


# --- BFCL ---------------------------------------------------------------------------------------

BFCL_FUNCTION = {"name": "math.hypot", "description": "Euclidean norm.", "parameters": {
    "type": "dict", "properties": {"x": {"type": "float"}, "y": {"type": "float"},
                                   "point": {"type": "tuple", "items": {"type": "integer"}},
                                   "note": {"type": "any"}},
    "required": ["x", "y"]}}


def bfcl_files(tmp_path, questions, answers):
    q = write_jsonl(tmp_path / "BFCL_v3_simple.json", questions)
    a = write_jsonl(tmp_path / "possible_answer.json", answers)
    return {"format": "bfcl", "path": str(q), "answers": str(a)}


def test_bfcl_questions_with_possible_answers(tmp_path):
    spec = bfcl_files(tmp_path, [
        {"id": "simple_0", "question": [[{"role": "user", "content": "Hypotenuse of 3 and 4 from point (1, 2)?"}]],
         "function": [BFCL_FUNCTION]},
        {"id": "irrelevance_3", "question": [[{"role": "system", "content": "Be exact."},
                                              {"role": "user", "content": "Who painted the Mona Lisa?"}]],
         "function": BFCL_FUNCTION},
    ], [{"id": "simple_0", "ground_truth": [{"math.hypot": {"x": [3.0, 3], "y": [4.0], "point": ["", [1, 2]],
                                                            "note": [""]}}]}])
    hypot, mona = imported(spec)
    assert hypot.calls == [{"name": "math_hypot", "arguments": {"x": 3.0, "y": 4.0, "point": [1, 2]}}]
    assert hypot.tools[0]["function"]["name"] == "math_hypot"
    assert hypot.tools[0]["function"]["parameters"]["properties"] == {
        "x": {"type": "number"}, "y": {"type": "number"}, "point": {"type": "array", "items": {"type": "integer"}},
        "note": {}}
    assert (mona.calls, mona.system, mona.query) == ([], "Be exact.", "Who painted the Mona Lisa?")


def test_bfcl_defaults_nobody_asked_for_are_left_out(tmp_path):
    # BFCL lists a parameter's Python default next to "" (may be left out): trained on, such rows teach
    # a model to invent values for optional arguments. Kept only where the conversation states them.
    unit = {"type": "string"}
    function = {"name": "fall.speed", "description": "Final speed of a falling object.", "parameters": {
        "type": "dict", "properties": {"height": {"type": "integer"}, "gravity": {"type": "float"}, "unit": unit,
                                       "exact": {"type": "boolean"}, "stops": {"type": "array", "items": unit}},
        "required": ["height"]}}
    answer = {"fall.speed": {"height": [100], "gravity": ["", 9.81], "unit": ["m/s", ""], "exact": ["", True],
                             "stops": [["Oslo", "Rome"], ""]}}
    spec = bfcl_files(tmp_path, [
        {"id": "simple_0", "question": [[{"role": "user", "content": "Speed after a 100 m drop?"}]],
         "function": [function]},
        {"id": "simple_1", "question": [[{"role": "user", "content": "100 m drop at g = 9.81, in M/S, via Rome"}]],
         "function": [function]},
        {"id": "simple_2", "question": [[{"role": "system", "content": "Answers are in m/s."},
                                         {"role": "user", "content": "Speed after one hundred meters?"}]],
         "function": [function]},
    ], [{"id": f"simple_{i}", "ground_truth": [answer]} for i in range(3)])
    unasked, stated, in_system = imported(spec)
    assert unasked.calls[0]["arguments"] == {"height": 100}
    assert stated.calls[0]["arguments"] == {"height": 100, "gravity": 9.81, "unit": "m/s", "stops": ["Oslo", "Rome"]}
    assert in_system.calls[0]["arguments"] == {"height": 100, "unit": "m/s"}


def test_bfcl_missing_answer_and_multi_turn_are_errors_with_lines(tmp_path):
    spec = bfcl_files(tmp_path, [
        {"id": "simple_1", "question": [[{"role": "user", "content": "Hypot 5 12"}]], "function": [BFCL_FUNCTION]},
        {"id": "multi_turn_base_0", "question": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]],
         "function": [BFCL_FUNCTION]},
    ], [])
    with pytest.raises(InputError) as excinfo:
        import_examples(spec)
    first, second = errors_of(excinfo)
    assert (first.line, first.field) == (1, "id") and "no possible answer for id 'simple_1'" in first.reason
    assert (second.line, second.field) == (2, "question") and "multi-turn" in second.reason


def test_bfcl_exec_answers_are_call_expressions_read_without_running_them(tmp_path):
    spec = bfcl_files(tmp_path, [
        {"id": "exec_simple_0", "question": [[{"role": "user", "content": "Hypot of 3 and 4 at (1, 2)"}]],
         "function": [BFCL_FUNCTION]},
    ], [{"id": "exec_simple_0", "ground_truth": ["math.hypot(x=3.0, y=4, point=(1, 2))"]}])
    (hypot,) = imported(spec)
    assert hypot.calls == [{"name": "math_hypot", "arguments": {"x": 3.0, "y": 4, "point": [1, 2]}}]


@pytest.mark.parametrize("answer, reason", [
    ("math.hypot(3, 4)", "keyword arguments only"),
    ("math.hypot(x=__import__('os').getcwd(), y=1)", "literal values"),
    ("math.hypot(x=3, y=", "not a Python call expression"),
    ("[1, 2]", "keyword arguments only"),
])
def test_bfcl_bad_call_expressions_are_errors_naming_the_line(tmp_path, answer, reason):
    spec = bfcl_files(tmp_path, [
        {"id": "exec_simple_0", "question": [[{"role": "user", "content": "Hypot"}]], "function": [BFCL_FUNCTION]},
    ], [{"id": "exec_simple_0", "ground_truth": [answer]}])
    with pytest.raises(InputError) as excinfo:
        import_examples(spec)
    (error,) = errors_of(excinfo)
    assert (error.line, error.field) == (1, "ground_truth") and reason in error.reason


def test_bfcl_none_means_left_out_and_nested_answers_are_chosen_per_key(tmp_path):
    nested = {"name": "set_ac", "description": "AC.", "parameters": {"type": "dict", "properties": {
        "body": {"type": "dict", "properties": {"mode": {"type": "string", "enum": ["COOL", "DRY"]},
                                                "power": {"type": "boolean"}, "fan": {"type": "integer"}}},
        "token": {"type": "string", "default": None}}, "required": ["body"]}}
    spec = bfcl_files(tmp_path, [
        {"id": "live_simple_0", "question": [[{"role": "user", "content": "AC to cool"}]], "function": [nested]},
        {"id": "live_simple_1", "question": [[{"role": "user", "content": "AC to dry, fan 9000"}]], "function": [nested]},
    ], [{"id": "live_simple_0", "ground_truth": [{"set_ac": {"body": [{"mode": ["COOL"], "power": [True],
                                                                      "fan": [""]}], "token": [None]}}]},
        {"id": "live_simple_1", "ground_truth": [{"set_ac": {"body": [{"mode": ["DRY"], "fan": ["dontcare"]}]}}]}])
    examples, skipped = import_examples({**spec, "skip_invalid": True})
    assert [ex.calls for ex in examples] == [[{"name": "set_ac", "arguments": {"body": {"mode": "COOL", "power": True}}}]]
    assert skipped == 1  # "dontcare" is not an integer: public-data noise, counted, not imported
    with pytest.raises(InputError) as excinfo:
        import_examples(spec)
    (error,) = errors_of(excinfo)
    assert error.line == 2 and error.field.endswith("body.fan")


# --- ShareGPT / Hermes --------------------------------------------------------------------------

HERMES_SYSTEM = ("You are a function calling AI model. <tools> [{'type': 'function', 'function': {'name': "
                 "'get_weather', 'description': 'Weather.', 'parameters': {'type': 'object', 'properties': "
                 "{'location': {'type': 'string'}}, 'required': ['location']}}}] </tools> Use the schema.")


def test_hermes_conversation_with_python_literal_calls_and_tools_in_the_system_turn(tmp_path):
    path = write_jsonl(tmp_path / "hermes.jsonl", [{"conversations": [
        {"from": "system", "value": HERMES_SYSTEM},
        {"from": "human", "value": "Weather in Lima and Quito?"},
        {"from": "gpt", "value": "<tool_call>\n{'arguments': {'location': 'Lima'}, 'name': 'get_weather'}\n</tool_call>\n"
                                 "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Quito\"}}\n</tool_call>"},
        {"from": "tool", "value": "<tool_response>\n{\"name\": \"get_weather\", \"content\": {\"t\": 19}}\n</tool_response>\n"
                                  "<tool_response>\n{\"t\": 14}\n</tool_response>"},
        {"from": "gpt", "value": "Lima 19, Quito 14."},
    ]}])
    (example,) = imported({"format": "sharegpt", "path": str(path)})
    assert example.system is None  # the format-specific tool prompt is dropped
    assert example.calls == [{"name": "get_weather", "arguments": {"location": "Lima"}},
                             {"name": "get_weather", "arguments": {"location": "Quito"}}]
    assert (example.tool_results, example.answer) == ([{"t": 19}, {"t": 14}], "Lima 19, Quito 14.")
    assert example.tools[0]["function"]["parameters"]["required"] == ["location"]


def test_sharegpt_with_tools_field_keeps_the_system_turn_and_allows_no_call(tmp_path):
    path = write_jsonl(tmp_path / "sg.jsonl", [{"tools": json.dumps([CALCULATOR]), "conversations": [
        {"from": "system", "value": "Be nice."}, {"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi!"}]}])
    (example,) = imported({"format": "sharegpt", "path": str(path)})
    assert (example.system, example.query, example.calls, example.answer) == ("Be nice.", "Hello", [], "Hi!")


def test_sharegpt_unknown_speaker_and_bad_call_are_located(tmp_path):
    path = write_jsonl(tmp_path / "sg.jsonl", [
        {"tools": [CALCULATOR], "conversations": [{"from": "robot", "value": "x"}]},
        {"tools": [CALCULATOR], "conversations": [{"from": "human", "value": "2+2"},
                                                  {"from": "gpt", "value": "<tool_call>{'name': 'calculator'}</tool_call>"}]},
    ])
    with pytest.raises(InputError) as excinfo:
        import_examples({"format": "sharegpt", "path": str(path)})
    first, second = errors_of(excinfo)
    assert (first.line, first.field) == (1, "conversations[0].from")
    assert (second.line, second.field) == (2, "calls[0].arguments")  # a call without arguments has {}
    assert "'expression' is a required property" in second.reason
