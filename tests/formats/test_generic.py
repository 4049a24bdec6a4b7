"""The generic format on two small tool-aware templates written for these tests (Qwen2.5/Hermes
style and Llama 3.x style), rendered in our sandbox and by transformers' apply_chat_template."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from format_fixtures import FUNCTION_TOKENS, GEMMA_SPECIALS, WEATHER_TOOL, build_tokenizer, supervised_text

from calltune.errors import InputError
from calltune.formats import FunctionGemmaFormat, GenericFormat, ParseResult, get_format
from calltune.formats.functiongemma import CHAT_TEMPLATE

# Hermes/ChatML: tools as JSON lines in the system turn, calls as <tool_call> blocks, consecutive
# tool results grouped in one user turn (so a prefix ending in a tool message is not a prefix of
# the longer conversation: segments must cope).
HERMES_TEMPLATE = """\
{%- if tools or messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}{{- 'You help.' }}{%- endif %}
{%- if tools %}
{{- '\\n\\nFunctions you may call:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
{{- '\\n</tools>\\nCall one with <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>' }}
{%- endif %}
{{- '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls or [] %}
{%- set call = tool_call.function %}
{{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' + (call.arguments | tojson) + '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""
HERMES_SPECIALS = {"bos_token": "<|im_start|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}

# Llama 3.x: date line, tools in the system turn, one JSON call {"name", "parameters"} per message.
LLAMA_TEMPLATE = """\
{{- bos_token + '<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: ' + strftime_now('%d %b %Y') }}
{%- if messages[0].role == 'system' %}{{- '\\n' + messages[0].content }}{%- set rest = messages[1:] %}
{%- else %}{%- set rest = messages %}{%- endif %}
{%- if tools %}
{{- '\\nTo call a function reply with JSON {"name": name, "parameters": arguments}.' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson(indent=2)) }}{%- endfor %}
{%- endif %}
{{- '<|eot_id|>' }}
{%- for message in rest %}
{%- if message.role == 'assistant' and message.tool_calls %}
{%- if message.tool_calls | length != 1 %}{{- raise_exception('only one tool call per message') }}{%- endif %}
{%- set call = message.tool_calls[0].function %}
{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n{"name": "' + call.name + '", "parameters": ' + (call.arguments | tojson) + '}<|eot_id|>' }}
{%- else %}
{{- '<|start_header_id|>' + ('ipython' if message.role == 'tool' else message.role) + '<|end_header_id|>\\n\\n' + message.content | trim + '<|eot_id|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""
LLAMA_SPECIALS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}

CALL_EXCHANGE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
]
TOOL_EXCHANGE = CALL_EXCHANGE[:2] + [
    {"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "name": "get_weather", "content": {"temp": 21}},
    {"role": "tool", "name": "get_weather", "content": "18 degrees"},
    {"role": "assistant", "content": "Paris 21, Rome 18."},
]


@pytest.fixture(scope="module")
def hermes_tokenizer():
    return build_tokenizer(HERMES_TEMPLATE, HERMES_SPECIALS, ["<|im_end|>"])


@pytest.fixture(scope="module")
def llama_tokenizer():
    return build_tokenizer(LLAMA_TEMPLATE, LLAMA_SPECIALS, ["<|start_header_id|>", "<|end_header_id|>"])


@pytest.fixture(scope="module")
def hermes(hermes_tokenizer):
    return get_format("generic", tokenizer=hermes_tokenizer)


@pytest.fixture(scope="module")
def llama(llama_tokenizer):
    return get_format("generic", tokenizer=llama_tokenizer)


# --- rendering and the training split -----------------------------------------------------------

def test_render_matches_transformers(hermes, hermes_tokenizer):
    from calltune.formats.generic import template_messages, template_tools

    for messages in (CALL_EXCHANGE, TOOL_EXCHANGE):
        for add_generation_prompt in (False, True):
            expected = hermes_tokenizer.apply_chat_template(
                template_messages(messages), tools=template_tools([WEATHER_TOOL]), tokenize=False,
                add_generation_prompt=add_generation_prompt)
            assert hermes.render(messages, [WEATHER_TOOL], add_generation_prompt) == expected


def test_hermes_call_target_is_what_the_template_writes(hermes):
    segments = hermes.segments(CALL_EXCHANGE, [WEATHER_TOOL])
    assert segments == [
        (hermes.prompt(CALL_EXCHANGE, [WEATHER_TOOL]), False),
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call><|im_end|>', True),
        ("\n", False)]
    assert segments[0][0].endswith("Weather in Paris?<|im_end|>\n<|im_start|>assistant\n")


def test_multi_turn_with_grouped_tool_results(hermes):
    segments = hermes.segments(TOOL_EXCHANGE, [WEATHER_TOOL])
    assert "".join(text for text, _ in segments) == hermes.render(TOOL_EXCHANGE, [WEATHER_TOOL])
    assert supervised_text(segments) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>',
        "Paris 21, Rome 18.<|im_end|>"]
    unsupervised = "".join(text for text, supervised in segments if not supervised)
    assert ('<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\n18 degrees\n'
            '</tool_response><|im_end|>\n<|im_start|>assistant\n') in unsupervised


def test_llama_style_render_target_and_fixed_date(llama, llama_tokenizer):
    text = llama.render(CALL_EXCHANGE, [WEATHER_TOOL])
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Today Date: 26 Jul 2024\nBe brief.\nTo call a function")
    from calltune.formats.generic import template_messages, template_tools
    by_transformers = llama_tokenizer.apply_chat_template(template_messages(CALL_EXCHANGE),
                                                          tools=template_tools([WEATHER_TOOL]), tokenize=False)
    assert by_transformers.replace(datetime.now().strftime("%d %b %Y"), "26 Jul 2024") == text
    assert supervised_text(llama.segments(CALL_EXCHANGE, [WEATHER_TOOL])) == [
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}<|eot_id|>']


def test_stop_strings_come_from_the_template(hermes, llama):
    assert hermes.stop_strings == ["<|im_end|>", "<|endoftext|>"]
    assert llama.stop_strings == ["<|eot_id|>"]


@pytest.mark.parametrize("fmt_name", ["hermes", "llama"])
def test_target_parses_back_to_expected(fmt_name, request):
    fmt = request.getfixturevalue(fmt_name)
    target = supervised_text(fmt.segments(CALL_EXCHANGE, [WEATHER_TOOL]))[0]
    assert fmt.parse(target) == ParseResult(fmt.expected(CALL_EXCHANGE), "", None)
    assert fmt.expected(CALL_EXCHANGE) == [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]


def test_chat_template_is_the_tokenizers_own(hermes):
    assert hermes.chat_template == HERMES_TEMPLATE and hermes.name == "generic"


# --- parsing ------------------------------------------------------------------------------------

CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


@pytest.mark.parametrize("text, calls, content", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', [CALL], ""),
    ('Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
     '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}</tool_call>',
     [CALL, {"name": "get_weather", "arguments": {"city": "Rome"}}], "Let me check."),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', [CALL], ""),
    ('{"name": "get_weather", "parameters": {"city": "Paris"}}', [CALL], ""),
    ('[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "ping"}]',
     [CALL, {"name": "ping", "arguments": {}}], ""),
    ('Sure:\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\nDone.', [CALL], "Sure:\n\nDone."),
    ('```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', [CALL], ""),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}<|im_end|>ignored', [CALL], ""),
    ("It is sunny, {they say}.", [], "It is sunny, {they say}."),
    ('Use ```python\nprint({"a": 1})\n``` here', [], 'Use ```python\nprint({"a": 1})\n``` here'),
])
def test_parse_calls(hermes, text, calls, content):
    assert hermes.parse(text) == ParseResult(calls, content, None)


@pytest.mark.parametrize("text, error", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', "invalid JSON: Unterminated string starting at position 58 (output truncated)"),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}', "invalid JSON: Expecting ',' delimiter at position 66 (output truncated)"),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}', "missing </tool_call> after the call at position 0"),
    ('<tool_call>\n{"name": "get_weather"} trailing</tool_call>', "unexpected character 't' at position 36, expected </tool_call>"),
    ("<tool_call>", "output ends at position 11 where a JSON call was expected"),
    ("<tool_call>{'name': 'get_weather'}</tool_call>", "invalid JSON: Expecting property name enclosed in double quotes at position 12"),
    ('<tool_call>{"arguments": {}}</tool_call>', 'the call at position 0 is not an object with a string "name"'),
    ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', '"arguments" of the call at position 0 is not an object'),
    ('<tool_call>{"name": "f", "arguments": "{bad"}</tool_call>', "a string that is not JSON"),
    ('{"name": "get_weather", "arguments": {"city": "Paris"', "invalid JSON"),
    ('```json\n[{"name": "get_weather", "arguments": {}}, {"name": ', "invalid JSON"),
])
def test_malformed_output_is_an_error(hermes, text, error):
    result = hermes.parse(text)
    assert result.error is not None and error in result.error, result.error
    assert result.calls == []


def test_calls_before_a_fault_are_kept(hermes):
    result = hermes.parse('<tool_call>{"name": "a"}</tool_call><tool_call>{"name": "b", "argu')
    assert result.calls == [{"name": "a", "arguments": {}}] and "output truncated" in result.error


def test_parse_never_raises_on_non_text(hermes):
    assert hermes.parse(None).error == "expected text, got NoneType"


# --- picking the format -------------------------------------------------------------------------

def test_auto_picks_functiongemma_from_the_vocabulary():
    tokenizer = build_tokenizer(CHAT_TEMPLATE, GEMMA_SPECIALS, FUNCTION_TOKENS)
    assert isinstance(get_format("auto", tokenizer=tokenizer), FunctionGemmaFormat)


def test_auto_picks_generic_for_a_tool_aware_template(hermes_tokenizer):
    fmt = get_format("auto", tokenizer=hermes_tokenizer)
    assert isinstance(fmt, GenericFormat) and fmt.chat_template == HERMES_TEMPLATE


def test_auto_refuses_a_template_without_tools():
    plain = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    with pytest.raises(InputError, match="set model.format") as error:
        get_format("auto", tokenizer=build_tokenizer(plain, HERMES_SPECIALS))
    assert error.value.field == "model.format"
    with pytest.raises(InputError, match="does not accept tools"):
        get_format("generic", chat_template=plain)


def test_generic_from_a_template_string():
    fmt = get_format("generic", chat_template=HERMES_TEMPLATE, special_tokens={"eos_token": "<|endoftext|>"})
    assert fmt.render(CALL_EXCHANGE[:2], [WEATHER_TOOL], True).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("name, kwargs, message", [
    ("chatml", {}, "unknown chat format 'chatml'"),
    ("auto", {}, "needs the base model's tokenizer"),
    ("generic", {}, "needs a tokenizer or a chat template"),
])
def test_get_format_errors(name, kwargs, message):
    with pytest.raises(InputError, match=message):
        get_format(name, **kwargs)


# --- templates that misbehave -------------------------------------------------------------------

def test_template_exceptions_become_input_errors(llama):
    two_calls = TOOL_EXCHANGE[:3]
    with pytest.raises(InputError, match="only one tool call per message"):
        llama.render(two_calls, [WEATHER_TOOL])


def test_template_that_rewrites_history_cannot_be_split():
    # Writes a different header for the last message than for earlier ones.
    shifting = ("{% for m in messages %}{{ '[LAST]' if loop.last else '[' + m.role + ']' }}{{ m.content }}"
                "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}{# tools #}")
    fmt = get_format("generic", chat_template=shifting)
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    with pytest.raises(InputError, match="not render message 3 as a continuation"):
        fmt.segments(messages)


def test_generic_messages_are_what_hf_templates_expect():
    from calltune.formats.generic import template_messages

    converted = template_messages([{"role": "developer", "content": "s"}, *TOOL_EXCHANGE[1:]])
    assert converted[0] == {"role": "system", "content": "s"}
    assert converted[2]["tool_calls"][0] == {"type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Paris"}}}
    assert converted[3] == {"role": "tool", "name": "get_weather", "content": json.dumps({"temp": 21})}
    assert converted[4]["content"] == "18 degrees"
