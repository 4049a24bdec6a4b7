"""The reply grammar from tools + chat format: which replies it takes, in llguidance and llama.cpp alike."""

from __future__ import annotations

import pytest
from constrain_helpers import TOOLS, gbnf_accepts, lark_accepts

from calltune.constrain.calls import call_grammar, chosen_tools
from calltune.errors import InputError
from calltune.formats import get_format
from calltune.formats.functiongemma.syntax import format_call

FG = get_format("functiongemma")
RESPONSE = "<start_function_response>"


def fg_calls(*calls) -> str:
    return "".join(format_call(name, arguments) for name, arguments in calls) + RESPONSE


VALID = {
    "required only": fg_calls(("get_weather", {"location": "Oslo"})),
    "optional args": fg_calls(("get_weather", {"location": "Oslo", "unit": "celsius", "days": 3})),
    "nested object, array, boolean": fg_calls(("create_event", {
        "title": "Sync, {weekly}: 1", "when": {"date": "2026-01-02", "hour": 9.5},
        "attendees": ["ann", "bo"], "private": False})),
    "empty array, negative number": fg_calls(("create_event", {"title": "x", "when": {"date": "d", "hour": -1e3},
                                                              "attendees": []})),
    "no arguments": fg_calls(("ping", {})),
    "parallel calls": fg_calls(("ping", {}), ("get_weather", {"location": "Oslo"}), ("ping", {})),
    "no call: text": "Sorry, I can't help with that.<end_of_turn>",
    "no call: empty": "<end_of_turn>",
}

INVALID = {
    "undeclared tool": fg_calls(("get_time", {})),
    "missing required": fg_calls(("get_weather", {"unit": "celsius"})),
    "missing nested required": fg_calls(("create_event", {"title": "x", "when": {"hour": 9}})),
    "unknown argument": fg_calls(("get_weather", {"location": "Oslo", "country": "NO"})),
    "enum broken": fg_calls(("get_weather", {"location": "Oslo", "unit": "kelvin"})),
    "string for integer": fg_calls(("get_weather", {"location": "Oslo", "days": "3"})),
    "float for integer": fg_calls(("get_weather", {"location": "Oslo", "days": 2.5})),
    "number for string": fg_calls(("get_weather", {"location": 7})),
    "string for boolean": fg_calls(("create_event", {"title": "x", "when": {"date": "d"}, "private": "no"})),
    "keys out of order": ("<start_function_call>call:get_weather{unit:<escape>celsius<escape>,"
                          "location:<escape>Oslo<escape>}<end_function_call>" + RESPONSE),
    "unterminated": "<start_function_call>call:get_weather{location:<escape>Oslo",
    "text then call": "Sure: " + fg_calls(("ping", {})),
    "spelled-out escape inside a string": ("<start_function_call>call:get_weather{location:<escape>a<esc"
                                           "ape>b<escape>}<end_function_call>" + RESPONSE),
}


@pytest.mark.parametrize("case", VALID)
def test_functiongemma_grammar_takes_valid_replies(case, gemma_tokenizer, gguf_vocab):
    grammar = call_grammar(FG, TOOLS)
    assert lark_accepts(grammar, VALID[case], gemma_tokenizer)
    assert gbnf_accepts(grammar, VALID[case], gguf_vocab)


@pytest.mark.parametrize("case", INVALID)
def test_functiongemma_grammar_refuses_invalid_replies(case, gemma_tokenizer, gguf_vocab):
    grammar = call_grammar(FG, TOOLS)
    assert not lark_accepts(grammar, INVALID[case], gemma_tokenizer)
    assert not gbnf_accepts(grammar, INVALID[case], gguf_vocab)


def test_tool_choice_narrows_the_grammar(gemma_tokenizer, gguf_vocab):
    call, text = VALID["required only"], VALID["no call: text"]
    required, none = call_grammar(FG, TOOLS, "required"), call_grammar(FG, TOOLS, "none")
    named = call_grammar(FG, TOOLS, {"type": "function", "function": {"name": "ping"}})
    for accepts, vocab in ((lark_accepts, gemma_tokenizer), (gbnf_accepts, gguf_vocab)):
        assert accepts(required, call, vocab) and not accepts(required, text, vocab)
        assert accepts(none, text, vocab) and not accepts(none, call, vocab)
        assert accepts(named, fg_calls(("ping", {})), vocab) and not accepts(named, call, vocab)


def test_tool_choice_errors_name_the_field():
    with pytest.raises(InputError, match="tool_choice"):
        chosen_tools(TOOLS, "sometimes")
    with pytest.raises(InputError, match="not among"):
        chosen_tools(TOOLS, {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(InputError, match="at least one tool"):
        chosen_tools([], "required")
    assert chosen_tools([], "auto") == ([], False, True)


def test_generic_format_reads_the_call_syntax_off_the_template(tiny_llama_dir, llama_tokenizer):
    fmt = get_format("generic", tokenizer=llama_tokenizer)
    grammar = call_grammar(fmt, TOOLS)
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Oslo", "unit": "celsius"}}\n</tool_call>\n'
    two = one + '<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>\n'
    end = fmt.stop_strings[0]
    assert lark_accepts(grammar, one + end, llama_tokenizer)
    assert lark_accepts(grammar, two + end, llama_tokenizer)
    assert lark_accepts(grammar, "No tool fits.\n" + end, llama_tokenizer)
    assert fmt.parse(two).calls == [{"name": "get_weather", "arguments": {"location": "Oslo", "unit": "celsius"}},
                                    {"name": "ping", "arguments": {}}]
    for bad in (one.replace("celsius", "kelvin"), one.replace('"location": "Oslo", ', ""),
                one.replace("get_weather", "get_time"), 'I will call {"name": "ping"}\n'):
        assert not lark_accepts(grammar, bad + end, llama_tokenizer)
