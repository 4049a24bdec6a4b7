"""The FunctionGemma chat format: Python renderer, Jinja template and call parser behind one object.

    syntax.py    values, calls and declarations in FunctionGemma's `{key:value}` / <escape> syntax
    render.py    the Python renderer: a walk over the messages in pieces marked by who wrote them
    template.py  the Jinja chat template that writes the same text (models ship it)
    parser.py    model output -> calls (recursive descent; never raises on model output)
"""

from __future__ import annotations

from calltune.formats.base import ChatFormat, ParseResult, merge_runs
from calltune.formats.functiongemma.parser import parse_functiongemma
from calltune.formats.functiongemma.render import DEFAULT_DEVELOPER_PROMPT, render_pieces
from calltune.formats.functiongemma.template import CHAT_TEMPLATE
from calltune.formats.messages import last_user_index

__all__ = ["CHAT_TEMPLATE", "DEFAULT_DEVELOPER_PROMPT", "FUNCTION_TOKENS", "FunctionGemmaFormat"]

# Gemma 3's <unused40>..<unused46>, renamed (ids 46..52).
FUNCTION_TOKENS = ("<start_function_declaration>", "<end_function_declaration>", "<start_function_call>",
                   "<end_function_call>", "<start_function_response>", "<end_function_response>", "<escape>")


class FunctionGemmaFormat(ChatFormat):
    name = "functiongemma"

    def render(self, messages, tools=None, add_generation_prompt=False) -> str:
        return "".join(text for _, (text, _) in render_pieces(messages, tools, add_generation_prompt))

    def segments(self, messages, tools=None) -> list[tuple[str, bool]]:
        final_exchange = last_user_index(messages) + 1
        return merge_runs((text, by_model and index >= final_exchange)
                          for index, (text, by_model) in render_pieces(messages, tools, False))

    def parse(self, text: str) -> ParseResult:
        return parse_functiongemma(text)

    @property
    def stop_strings(self) -> list[str]:
        return ["<start_function_response>", "<end_of_turn>"]

    @property
    def chat_template(self) -> str:
        return CHAT_TEMPLATE
