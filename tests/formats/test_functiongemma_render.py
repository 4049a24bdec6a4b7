"""FunctionGemma rendering: golden cases byte for byte (Python renderer, Jinja template in our sandbox
and in transformers' apply_chat_template), declarations, values, message shapes, training split."""

from __future__ import annotations

import pytest
from format_fixtures import (FUNCTION_TOKENS, GEMMA_SPECIALS, GOLDEN_CASES, GOLDEN_IDS, WEATHER_TOOL,
                             build_tokenizer, supervised_text)

from calltune.errors import InputError
from calltune.formats import get_format
from calltune.formats.functiongemma import CHAT_TEMPLATE, DEFAULT_DEVELOPER_PROMPT
from calltune.formats.sandbox import render_template

FMT = get_format("functiongemma")
E = "<escape>"


def jinja_render(messages, tools=None, add_generation_prompt=False) -> str:
    return render_template(CHAT_TEMPLATE, messages, tools, add_generation_prompt, bos_token="<bos>")


def both_renders(messages, tools=None, add_generation_prompt=False) -> tuple[str, str]:
    return FMT.render(messages, tools, add_generation_prompt), jinja_render(messages, tools, add_generation_prompt)


@pytest.fixture(scope="module")
def gemma_tokenizer():
    return build_tokenizer(CHAT_TEMPLATE, GEMMA_SPECIALS, FUNCTION_TOKENS)


# --- golden cases -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", GOLDEN_CASES, ids=GOLDEN_IDS)
def test_python_renderer_matches_golden(case):
    assert FMT.render(case["messages"], case["tools"], case["add_generation_prompt"]) == case["expected"]


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=GOLDEN_IDS)
def test_jinja_template_matches_golden(case):
    assert jinja_render(case["messages"], case["tools"], case["add_generation_prompt"]) == case["expected"]


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=GOLDEN_IDS)
def test_transformers_apply_chat_template_matches_golden(case, gemma_tokenizer):
    text = gemma_tokenizer.apply_chat_template(case["messages"], tools=case["tools"], tokenize=False,
                                               add_generation_prompt=case["add_generation_prompt"])
    assert text == case["expected"]


def test_golden_file_has_the_seven_cases():
    assert len(GOLDEN_CASES) == 7


# --- declarations -------------------------------------------------------------------------------

NESTED_TOOL = {"type": "function", "function": {
    "name": "create_event", "description": "Create an event.",
    "parameters": {"type": "object", "required": ["title"], "properties": {
        "title": {"type": "string", "description": "Title"},
        "attendees": {"type": "array", "description": "People", "items": {
            "type": "object", "required": ["email"],
            "properties": {"email": {"type": "string", "description": "Email"}, "optional": {"type": "boolean"}}}},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["work", "home"]}},
        "where": {"type": "object", "description": "Place", "required": ["lat", "lon"],
                  "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
        "priority": {"type": "integer", "enum": [1, 2, 3]}}}}}

NESTED_DECLARATION = (
    "<start_function_declaration>declaration:create_event{description:<escape>Create an event.<escape>,"
    "parameters:{properties:{"
    "attendees:{description:<escape>People<escape>,items:{properties:{"
    "email:{description:<escape>Email<escape>,type:<escape>STRING<escape>},"
    "optional:{description:<escape><escape>,type:<escape>BOOLEAN<escape>}},"
    "required:[<escape>email<escape>],type:<escape>OBJECT<escape>},type:<escape>ARRAY<escape>},"
    "priority:{description:<escape><escape>,enum:[1,2,3],type:<escape>INTEGER<escape>},"
    "tags:{description:<escape><escape>,items:{enum:[<escape>work<escape>,<escape>home<escape>],"
    "type:<escape>STRING<escape>},type:<escape>ARRAY<escape>},"
    "title:{description:<escape>Title<escape>,type:<escape>STRING<escape>},"
    "where:{description:<escape>Place<escape>,properties:{"
    "lat:{description:<escape><escape>,type:<escape>NUMBER<escape>},"
    "lon:{description:<escape><escape>,type:<escape>NUMBER<escape>}},"
    "required:[<escape>lat<escape>,<escape>lon<escape>],type:<escape>OBJECT<escape>}},"
    "required:[<escape>title<escape>],type:<escape>OBJECT<escape>}}<end_function_declaration>")

USER = [{"role": "user", "content": "hi"}]


def developer_turn(declarations: str) -> str:
    return f"<bos><start_of_turn>developer\n{DEFAULT_DEVELOPER_PROMPT}{declarations}<end_of_turn>\n"


def test_nested_objects_arrays_and_enums_in_declarations():
    for text in both_renders(USER, [NESTED_TOOL]):
        assert text == developer_turn(NESTED_DECLARATION) + "<start_of_turn>user\nhi<end_of_turn>\n"


@pytest.mark.parametrize("parameters", [{"type": "object", "properties": {}}, {"type": "object"}, None],
                         ids=["empty-properties", "no-properties", "no-parameters"])
def test_tool_without_parameters(parameters):
    tool = {"name": "ping", "description": "Ping."}
    if parameters is not None:
        tool["parameters"] = parameters
    expected = developer_turn("<start_function_declaration>declaration:ping{description:<escape>Ping.<escape>,"
                              "parameters:{type:<escape>OBJECT<escape>}}<end_function_declaration>")
    for text in both_renders(USER, [tool]):
        assert text.startswith(expected)


def test_the_three_tool_shapes_render_the_same():
    function = WEATHER_TOOL["function"]
    renders = {FMT.render(USER, [tool]) for tool in (WEATHER_TOOL, {"function": function}, function)}
    assert len(renders) == 1


def test_types_are_upper_cased_and_type_lists_kept():
    tool = {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": ["string", "null"]}}}}
    for text in both_renders(USER, [tool]):
        assert f"x:{{description:{E}{E},type:[{E}STRING{E},{E}NULL{E}]}}" in text
        assert f"type:{E}OBJECT{E}}}}}<end_function_declaration>" in text


# --- values in calls and tool responses ---------------------------------------------------------

ALL_TYPES = {"s": "a{b}:c,d", "i": 15, "f": 2.5, "neg": -3, "big": 1e20, "t": True, "fa": False, "n": None,
             "l": [1, "x", [True]], "o": {"k": {"z": None}}, "e": [], "eo": {}}
ALL_TYPES_TEXT = (f"{{big:1e+20,e:[],eo:{{}},f:2.5,fa:false,i:15,l:[1,{E}x{E},[true]],n:null,neg:-3,"
                  f"o:{{k:{{z:null}}}},s:{E}a{{b}}:c,d{E},t:true}}")


def call_message(arguments, name="f"):
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def test_call_arguments_of_every_json_type():
    for text in both_renders(USER + [call_message(ALL_TYPES)]):
        assert text.endswith(f"<start_function_call>call:f{ALL_TYPES_TEXT}<end_function_call>"
                             "<start_function_response>")


def test_keys_sort_like_jinja_dictsort():
    for text in both_renders(USER + [call_message({"b": 1, "A": 2, "a": 3})]):
        assert "call:f{A:2,a:3,b:1}" in text


@pytest.mark.parametrize("content, body", [
    ({"temp": 15, "ok": True}, "{ok:true,temp:15}"),
    (21.5, "{value:21.5}"),
    ("sunny", f"{{value:{E}sunny{E}}}"),
    ([1, None], "{value:[1,null]}"),
    (None, "{value:null}"),
    (ALL_TYPES, ALL_TYPES_TEXT),
])
def test_tool_results_in_calltune_style(content, body):
    messages = USER + [call_message({}), {"role": "tool", "name": "f", "content": content}]
    for text in both_renders(messages):
        assert text.endswith(f"<start_function_call>call:f{{}}<end_function_call>"
                             f"<start_function_response>response:f{body}<end_function_response>")


def test_tool_result_list_in_cookbook_style():
    content = [{"name": "a", "response": {"x": 1}}, {"name": "b", "response": "done"}]
    for text in both_renders(USER + [call_message({}), {"role": "tool", "content": content}]):
        assert text.endswith("<start_function_response>response:a{x:1}<end_function_response>"
                             f"<start_function_response>response:b{{value:{E}done{E}}}<end_function_response>")


# --- conversation structure ---------------------------------------------------------------------

SYSTEM = "Today is Monday.\n" + DEFAULT_DEVELOPER_PROMPT + "\n"
WEATHER_DECLARATION = (
    "<start_function_declaration>declaration:get_weather{description:<escape>Weather for a city.<escape>,"
    "parameters:{properties:{city:{description:<escape>City<escape>,type:<escape>STRING<escape>},"
    "days:{description:<escape><escape>,type:<escape>INTEGER<escape>}},required:[<escape>city<escape>],"
    "type:<escape>OBJECT<escape>}}<end_function_declaration>")
TWO_CITIES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
    {"role": "tool", "name": "get_weather", "content": {"temp": 21}},
    {"role": "tool", "name": "get_weather", "content": {"temp": 18}},
    {"role": "assistant", "content": "Paris 21, Rome 18."},
]
TWO_CITIES_PROMPT = (
    f"<bos><start_of_turn>developer\nToday is Monday.\n{DEFAULT_DEVELOPER_PROMPT}{WEATHER_DECLARATION}"
    "<end_of_turn>\n<start_of_turn>user\nWeather in Paris and Rome?<end_of_turn>\n<start_of_turn>model\n")
TWO_CITIES_CALLS = (f"<start_function_call>call:get_weather{{city:{E}Paris{E}}}<end_function_call>"
                    '<start_function_call>call:get_weather{                    {"city": "Rome"}}'
                    "<end_function_call><start_function_response>")
TWO_CITIES_RESPONSES = ("response:get_weather{temp:21}<end_function_response>"
                        "<start_function_response>response:get_weather{temp:18}<end_function_response>")
TWO_CITIES_ANSWER = "Paris 21, Rome 18.<end_of_turn>"


def test_multi_turn_with_parallel_calls_and_responses():
    expected = TWO_CITIES_PROMPT + TWO_CITIES_CALLS + TWO_CITIES_RESPONSES + TWO_CITIES_ANSWER + "\n"
    assert both_renders(TWO_CITIES, [WEATHER_TOOL]) == (expected, expected)


def test_segments_supervise_calls_and_final_answer_only():
    segments = FMT.segments(TWO_CITIES, [WEATHER_TOOL])
    assert segments == [(TWO_CITIES_PROMPT, False), (TWO_CITIES_CALLS, True), (TWO_CITIES_RESPONSES, False),
                        (TWO_CITIES_ANSWER, True), ("\n", False)]
    assert "".join(text for text, _ in segments) == FMT.render(TWO_CITIES, [WEATHER_TOOL])


def test_earlier_exchanges_are_not_supervised():
    messages = TWO_CITIES + [{"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "Welcome."}]
    segments = FMT.segments(messages, [WEATHER_TOOL])
    assert supervised_text(segments) == ["Welcome.<end_of_turn>"]
    assert segments[0][0] == FMT.prompt(messages, [WEATHER_TOOL])
    assert FMT.expected(messages) == []


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=GOLDEN_IDS)
def test_segments_join_to_render_and_start_with_prompt(case):
    segments = FMT.segments(case["messages"], case["tools"])
    assert "".join(text for text, _ in segments) == FMT.render(case["messages"], case["tools"])
    targets = supervised_text(segments)
    if targets:
        assert segments[0] == (FMT.prompt(case["messages"], case["tools"]), False)
    else:  # the conversation ends with the user: nothing to learn
        assert segments == [(FMT.render(case["messages"], case["tools"]), False)]
    for text in targets:
        assert text.endswith(("<start_function_response>", "<end_of_turn>"))


def test_call_target_ends_with_start_function_response():
    case = next(c for c in GOLDEN_CASES if c["name"] == "finetune_target_call_last")
    segments = FMT.segments(case["messages"], case["tools"])
    assert segments == [(FMT.prompt(case["messages"], case["tools"]), False),
                        (case["expected"][len(segments[0][0]):], True)]
    assert FMT.expected(case["messages"]) == [
        {"name": "search_knowledge_base", "arguments": {"query": "travel meal reimbursement limit policy"}}]


def test_expected_decodes_json_string_arguments():
    assert FMT.expected(TWO_CITIES) == [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                        {"name": "get_weather", "arguments": {"city": "Rome"}}]


def test_roles_system_developer_assistant_model():
    a = FMT.render([{"role": "system", "content": "S"}, {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "ok"}])
    b = FMT.render([{"role": "developer", "content": "S"}, {"role": "user", "content": "u"},
                    {"role": "model", "content": "ok"}])
    expected = ("<bos><start_of_turn>developer\nS<end_of_turn>\n<start_of_turn>user\nu<end_of_turn>\n"
                "<start_of_turn>model\nok<end_of_turn>\n")
    assert a == b == expected == jinja_render([{"role": "system", "content": "S"}, {"role": "user", "content": "u"},
                                               {"role": "assistant", "content": "ok"}])


def test_no_tools_and_no_system_has_no_developer_turn():
    assert both_renders(USER, None, True) == ("<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",) * 2


def test_user_after_unanswered_call_closes_the_model_turn():
    messages = USER + [call_message({"x": 1}), {"role": "user", "content": "never mind"}]
    python, jinja = both_renders(messages, None, True)
    assert python == jinja
    assert python.endswith("call:f{x:1}<end_function_call><end_of_turn>\n<start_of_turn>user\nnever mind"
                           "<end_of_turn>\n<start_of_turn>model\n")


def test_generation_prompt_is_not_added_inside_an_open_model_turn():
    golden = next(c for c in GOLDEN_CASES if c["name"] == "weather_call_and_response_enum")
    assert FMT.render(golden["messages"], golden["tools"], True).endswith("<end_function_response>")


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("messages, field", [
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": ["not", "text"]}], "messages[0].content"),
    (USER + [call_message({}), {"role": "tool", "content": "no name"}], "messages.tool"),
    (USER + [{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}], "tool_calls"),
])
def test_bad_messages_raise_input_error_naming_the_field(messages, field):
    with pytest.raises(InputError) as error:
        FMT.render(messages)
    assert error.value.field == field


def test_bad_tool_raises_input_error():
    with pytest.raises(InputError, match="function name"):
        FMT.render(USER, [{"type": "function", "function": {"description": "no name"}}])


OPENAI_CONVERSATION = USER + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": {"y": "two"}}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "second"},
    {"role": "tool", "tool_call_id": "call_1", "content": "first"},
]


def test_jinja_names_openai_tool_results_by_their_call_id():
    """OpenAI clients (and llama-server's template probes) send results with a tool_call_id and
    no name; the template finds the call's name, as the importer does for the Python renderer."""
    from calltune.data.importers.openai import contract_messages

    rendered = jinja_render(OPENAI_CONVERSATION)
    assert rendered == FMT.render(contract_messages(OPENAI_CONVERSATION))
    assert rendered.endswith("<start_function_response>response:g{value:<escape>second<escape>}<end_function_response>"
                             "<start_function_response>response:f{value:<escape>first<escape>}<end_function_response>")


def test_jinja_template_rejects_what_the_renderer_rejects():
    with pytest.raises(InputError, match="a tool message needs a name"):
        jinja_render(USER + [call_message({}), {"role": "tool", "content": "no name"}])
    with pytest.raises(InputError, match="needs a name, or the tool_call_id of an earlier call"):
        jinja_render(OPENAI_CONVERSATION[:2] + [{"role": "tool", "tool_call_id": "call_9", "content": "x"}])
    with pytest.raises(InputError, match="unknown role"):
        jinja_render([{"role": "robot", "content": "x"}])


def test_expected_rejects_invalid_json_string_arguments():
    with pytest.raises(InputError, match="not valid JSON"):
        FMT.expected(USER + [call_message("{broken")])


def test_prompt_needs_a_user_message():
    with pytest.raises(InputError, match="no user message"):
        FMT.prompt([{"role": "system", "content": "s"}])


def test_format_properties():
    assert FMT.name == "functiongemma"
    assert FMT.stop_strings == ["<start_function_response>", "<end_of_turn>"]
    assert FMT.chat_template == CHAT_TEMPLATE
