"""Render chat templates as transformers' apply_chat_template does, inside Jinja's immutable sandbox.

Same environment options (trim_blocks, lstrip_blocks, loopcontrols), the same `tojson` filter and
`raise_exception` global. One difference on purpose: `strftime_now` returns a fixed date, so text
rendered for training (Llama 3.x templates print today's date) is reproducible.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from calltune.errors import InputError

FIXED_NOW = datetime(2024, 7, 26)  # the default date Llama 3.x templates print


class _GenerationBlock(Extension):
    """Accept `{% generation %}…{% endgeneration %}` (assistant-mask markers) and render the body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' override: plain json.dumps, without Jinja's HTML escaping
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols, _GenerationBlock])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"chat template does not compile: {e.message} (template line {e.lineno})",
                         field="chat_template") from None


def render_template(source: str, messages: list[dict], tools: list[dict] | None = None,
                    add_generation_prompt: bool = False, **variables) -> str:
    """Render `source` with the variables apply_chat_template passes (special tokens go in `variables`)."""
    template = compile_template(source)
    try:
        return template.render(messages=messages, tools=tools, documents=None,
                               add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.TemplateError as e:
        raise InputError(f"chat template failed: {e}", field="chat_template") from None
