"""FunctionGemma output parsing: well-formed calls of every shape, and malformed or truncated output
that must come back as a ParseResult with an error, never an exception."""

from __future__ import annotations

import pytest
from format_fixtures import GOLDEN_CASES
from hypothesis import given, settings
from hypothesis import strategies as st

from calltune.formats import ParseResult, get_format

FMT = get_format("functiongemma")
E = "<escape>"
START, END = "<start_function_call>", "<end_function_call>"


def call(body: str) -> str:
    return f"{START}call:{body}{END}"


def parsed(text: str) -> ParseResult:
    result = FMT.parse(text)
    assert isinstance(result, ParseResult)
    return result


# --- well-formed output -------------------------------------------------------------------------

@pytest.mark.parametrize("body, arguments", [
    (f"get_weather{{location:{E}Tokyo, Japan{E}}}", {"location": "Tokyo, Japan"}),
    ("ping{}", {}),
    ("f{n:15,x:-2.5,e:1e+20,small:1.5e-07,zero:0}", {"n": 15, "x": -2.5, "e": 1e20, "small": 1.5e-07, "zero": 0}),
    ("f{t:true,f:false,n:null}", {"t": True, "f": False, "n": None}),
    (f"f{{items:[1,{E}a{E},[true,null],{{k:2}}],empty:[],obj:{{}}}}",
     {"items": [1, "a", [True, None], {"k": 2}], "empty": [], "obj": {}}),
    (f"f{{a:{{b:{{c:{{d:{E}deep{E}}}}}}}}}", {"a": {"b": {"c": {"d": "deep"}}}}),
    (f"f{{s:{E}{{a}}, b: [c], d:e{E}}}", {"s": "{a}, b: [c], d:e"}),
    (f"f{{s:{E}<end_function_call><end_of_turn><start_function_response>{E}}}",
     {"s": "<end_function_call><end_of_turn><start_function_response>"}),
    (f"f{{s:{E}{E},multi:{E}line\none{E}}}", {"s": "", "multi": "line\none"}),
    (f"f{{{E}odd key: yes{E}:1}}", {"odd key: yes": 1}),
    ("f{ a : 1 , b : [ 1 , 2 ] }", {"a": 1, "b": [1, 2]}),
    ("my-tool.v2{x:1}", {"x": 1}),
])
def test_single_call(body, arguments):
    result = parsed(call(body) + "<start_function_response>")
    assert result == ParseResult([{"name": body.split("{")[0], "arguments": arguments}], "", None)


def test_numbers_and_nested_values_survive_where_regex_parsers_drop_them():
    result = parsed(call("set_alarm{hour:7,minute:30,repeat:{days:[1,2,3],enabled:true},volume:0.8}"))
    assert result.calls == [{"name": "set_alarm", "arguments": {
        "hour": 7, "minute": 30, "repeat": {"days": [1, 2, 3], "enabled": True}, "volume": 0.8}}]
    assert isinstance(result.calls[0]["arguments"]["hour"], int)


def test_parallel_calls_and_text_around_them():
    text = (f"Sure, doing both. {call('a{x:1}')}{call(f'b{{y:{E}z{E}}}')} Done."
            "<start_function_response>ignored after the stop token")
    assert parsed(text) == ParseResult([{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": "z"}}],
                                       "Sure, doing both.  Done.", None)


def test_plain_answer_has_no_calls():
    assert parsed("It is sunny in Paris.<end_of_turn>") == ParseResult([], "It is sunny in Paris.", None)
    assert parsed("") == ParseResult([], "", None)


def test_text_stops_at_end_of_turn_and_eos():
    assert parsed(f"hi<end_of_turn>{call('a{}')}").calls == []
    assert parsed(f"hi<eos>{call('a{}')}").content == "hi"


@pytest.mark.parametrize("case", [c for c in GOLDEN_CASES if c["name"].endswith("completion")
                                  or c["name"] == "finetune_target_call_last"], ids=lambda c: c["name"])
def test_golden_completions_parse_to_the_expected_calls(case):
    completion = case["expected"][len(FMT.prompt(case["messages"], case["tools"])):]
    assert parsed(completion) == ParseResult(FMT.expected(case["messages"]), "", None)


# --- malformed and truncated output -------------------------------------------------------------

@pytest.mark.parametrize("text, error", [
    (f"{START}call:f{{a:{E}Tok", "unterminated string starting at position 30 (output truncated)"),
    (f"{START}call:f{{a:1,", "unterminated call starting at position 0: output ends at position 32 where a key was expected"),
    (f"{START}call:f{{a:[1,2", "output ends at position 34 where ',' or ']' was expected"),
    (f"{START}call:f{{a:1}}", "missing <end_function_call> after the call at position 0 (output truncated)"),
    (f"{START}call:f{{a:1}}<start_function_response>", "unexpected character '<' at position 32, expected '<end_function_call>'"),
    (f"{START}call:", "unterminated call starting at position 0: output ends at position 26 where a function name"),
    (f"{START}", "output ends at position 21 where 'call:' was expected"),
    (f"{START}cal:f{{}}{END}", "unexpected character 'c' at position 21, expected 'call:'"),
    (f"{START}call:{{a:1}}{END}", "unexpected character '{' at position 26, expected a function name"),
    (f"{START}call:f{{a:Tokyo}}{END}", "unexpected character 'T' at position 30, expected a value"),
    (f"{START}call:f{{a:1 b:2}}{END}", "unexpected character 'b' at position 32, expected ',' or '}'"),
    (f"{START}call:f{{a:1,a:2}}{END}", "duplicate key 'a' at position 32"),
    (f"{START}call:f{{:1}}{END}", "unexpected character ':' at position 28, expected a key"),
    (f"{START}call:f{{a:15abc}}{END}", "unexpected character 'a' at position 32"),
    (f"{START}call:f" + "{a:" * 70 + "1" + "}" * 70 + END, "nesting deeper than 64 at position 219"),
    (f'{START}call:f{{"city":"Paris"}}{END}', "unexpected character '\"' at position 35, expected a value"),
])
def test_malformed_output_gives_an_error_not_an_exception(text, error):
    result = parsed(text)
    assert result.error is not None and error in result.error
    assert result.calls == []
    assert not result.ok


def test_calls_before_a_fault_are_kept():
    result = parsed(call("a{x:1}") + f"{START}call:b{{y:{E}trunc")
    assert result.calls == [{"name": "a", "arguments": {"x": 1}}]
    assert "unterminated string" in result.error


def test_non_text_input_is_an_error():
    assert parsed(None).error == "expected text, got NoneType"


VALID = call(f"f{{a:[1,{{b:{E}x, y{E}}}],c:-0.5,d:null}}")


@pytest.mark.parametrize("cut", range(len(START) + 1, len(VALID)))
def test_every_truncation_of_a_call_is_an_error(cut):
    result = parsed(VALID[:cut])
    assert result.error is not None and result.calls == []


FRAGMENTS = [E, START, END, "call:", "call:f", "true", "null", "<start_function_response>", "<end_of_turn>",
             *"{}[]:,-.0123456789abe \n\""]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60), st.booleans())
def test_parser_never_raises_on_random_text(fragments, open_with_call):
    result = parsed((START if open_with_call else "") + "".join(fragments))
    assert isinstance(result.calls, list) and isinstance(result.content, str)
    assert result.error is None or isinstance(result.error, str)
