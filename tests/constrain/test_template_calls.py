"""Reading a generic template's call syntax off a probe render."""

from __future__ import annotations

import pytest

from calltune.constrain.calls import call_grammar
from calltune.constrain.template_calls import TemplateCalls
from calltune.errors import InputError
from calltune.formats import get_format


def test_the_tiny_chatml_template_writes_hermes_calls(llama_tokenizer):
    calls = TemplateCalls.probe(get_format("generic", tokenizer=llama_tokenizer))
    layout = calls.layout
    assert (layout.prefix, layout.middle, layout.suffix) == ('<tool_call>\n{"name": "', '", "arguments": ',
                                                             "}\n</tool_call>\n")
    assert (layout.colon, layout.comma, calls.parallel, calls.between_calls) == (": ", ", ", True, "")


def test_a_template_that_writes_no_json_call_cannot_be_constrained():
    template = ("{% for m in messages %}{{ m.role }}: {% if m.tool_calls %}CALL {{ m.tool_calls[0].function.name }}"
                "{% else %}{{ m.content }}{% endif %}<end>\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}{# tools #}")
    fmt = get_format("generic", chat_template=template, special_tokens={"eos_token": "<end>"})
    with pytest.raises(InputError, match="cannot read the call syntax"):
        call_grammar(fmt, [{"name": "ping", "parameters": {"type": "object", "properties": {}}}])
