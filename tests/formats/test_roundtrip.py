"""Property tests on random argument trees: render -> parse gives the calls back, and the Python
renderer and the Jinja template write the same bytes for calls, tool results and declarations."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from calltune.formats import get_format
from calltune.formats.functiongemma import CHAT_TEMPLATE
from calltune.formats.sandbox import render_template

FMT = get_format("functiongemma")

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
keys = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)
strings = st.text(max_size=20).filter(lambda s: "<escape>" not in s)
leaves = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
          | st.floats(allow_nan=False, allow_infinity=False) | strings)
trees = st.recursive(leaves, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(keys, children, max_size=4), max_leaves=16)
arguments = st.dictionaries(keys, trees, max_size=5)
calls = st.lists(st.fixed_dictionaries({"name": names, "arguments": arguments}), min_size=1, max_size=3)


def conversation(call_list: list[dict]) -> list[dict]:
    return [{"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in call_list]}]


@settings(max_examples=300, deadline=None)
@given(calls)
def test_render_then_parse_returns_the_calls(call_list):
    messages = conversation(call_list)
    targets = [text for text, supervised in FMT.segments(messages) if supervised]
    assert len(targets) == 1 and targets[0].endswith("<start_function_response>")
    result = FMT.parse(targets[0])
    assert result.error is None
    assert result.calls == call_list == FMT.expected(messages)
    assert result.content == ""


@settings(max_examples=150, deadline=None)
@given(calls, trees)
def test_jinja_template_writes_what_the_renderer_writes(call_list, result):
    messages = conversation(call_list) + [{"role": "tool", "name": call_list[0]["name"], "content": result},
                                          {"role": "assistant", "content": "done"}]
    python = FMT.render(messages)
    assert render_template(CHAT_TEMPLATE, messages, bos_token="<bos>") == python


schema_types = st.sampled_from(["string", "number", "integer", "boolean", "null"])
leaf_schemas = st.fixed_dictionaries({"type": schema_types},
                                     optional={"description": strings, "enum": st.lists(leaves, max_size=3)})
schemas = st.recursive(
    leaf_schemas,
    lambda inner: st.fixed_dictionaries({"type": st.just("array"), "items": inner},
                                        optional={"description": strings})
    | st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(keys, inner, max_size=3)},
                            optional={"description": strings, "required": st.lists(keys, max_size=2)}),
    max_leaves=8)
tools = st.lists(st.fixed_dictionaries({
    "name": names, "description": strings,
    "parameters": st.fixed_dictionaries({"type": st.just("object"),
                                         "properties": st.dictionaries(keys, schemas, max_size=4)},
                                        optional={"required": st.lists(keys, max_size=2)})}), max_size=3)


@settings(max_examples=150, deadline=None)
@given(tools)
def test_jinja_declarations_match_the_renderer(tool_list):
    messages = [{"role": "user", "content": "hi"}]
    assert render_template(CHAT_TEMPLATE, messages, tool_list, True, bos_token="<bos>") == \
        FMT.render(messages, tool_list, True)
