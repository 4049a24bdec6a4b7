"""The call syntax of a generic-format model, read off its own chat template.

The template renders an assistant turn with two probe calls; where the probe names, keys and
values land gives the text around a call (e.g. `<tool_call>\\n{"name": "` ... `}\\n</tool_call>\\n`),
the JSON separators the template writes (`": "`, `", "`) and what ends the turn. A template that
renders one call only (or whose parallel form cannot be read) gets single calls.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from calltune.constrain.grammar import Lit, Token, seq
from calltune.constrain.schema import JsonValues
from calltune.errors import InputError
from calltune.formats.generic_parser import TOOL_CALL_OPEN

_NAMES = ("calltuneprobeone", "calltuneprobetwo")
_K1, _K2, _V1 = "calltunekeyone", "calltunekeytwo", "calltunevalue"
_ARGS = ({_K1: _V1, _K2: 7}, {_K1: _V1})


@dataclass(frozen=True)
class _Layout:
    prefix: str  # text before a call's name
    middle: str  # between the name and the argument object
    suffix: str  # after the argument object
    colon: str
    comma: str


class TemplateCalls:
    """Call shape of a GenericFormat, for calltune.constrain.calls."""

    def __init__(self, layout: _Layout, between: str | None, after: str, end: str):
        self.layout = layout
        self.values = JsonValues(avoid=(end,), colon=layout.colon, comma=layout.comma)
        self.between_calls = between if between is not None else ""
        self.parallel = between is not None
        self.after_calls = seq(Lit(after), Token(end))
        self.end_of_turn = Token(end)
        self.text_avoid = (TOOL_CALL_OPEN, '"name"', end)
        self.closers = (end, "]", "}", ",", '"')
        self.string_closers = ('"',)

    def call(self, name: str, arguments):
        layout = self.layout
        return seq(Lit(layout.prefix), Lit(name), Lit(layout.middle), arguments, Lit(layout.suffix))

    @classmethod
    def probe(cls, fmt) -> "TemplateCalls":
        stops = fmt.stop_strings
        if not stops:
            raise InputError("the chat template writes no end-of-turn marker, so its replies cannot be constrained",
                             field="chat_template")
        end = stops[0]
        for count in (2, 1):
            text = _probe_text(fmt, count)
            if text is None or not text.endswith(end):
                continue
            found = _read(text[: -len(end)], count)
            if found is not None:
                layout, between, after = found
                return cls(layout, between if count == 2 else None, after, end)
        raise InputError("cannot read the call syntax off the chat template (it does not write the probe call's "
                         "name and JSON arguments), so its calls cannot be constrained: set evaluate.constrained "
                         "to false (serve: --no-constrain)", field="chat_template")


def _probe_text(fmt, count: int) -> str | None:
    """The supervised text of an assistant turn with `count` probe calls, or None if it fails."""
    tools = [{"name": n, "parameters": {"type": "object", "properties": {}}} for n in _NAMES]
    calls = [{"name": _NAMES[i], "arguments": _ARGS[i]} for i in range(count)]
    messages = [{"role": "user", "content": "probe"}, {"role": "assistant", "content": "", "tool_calls": calls}]
    try:
        runs = fmt.segments(messages, tools)
    except Exception:  # noqa: BLE001 - a template that cannot render this has no such form
        return None
    supervised = [text for text, flag in runs if flag]
    return supervised[0] if len(supervised) == 1 else None


def _read(text: str, count: int):
    """(layout, text between calls, text after the last call) of a probe render, or None."""
    spans = []
    pos = 0
    for i in range(count):
        name_at = text.find(_NAMES[i], pos)
        key_at = text.find(f'"{_K1}"', name_at)
        if name_at < 0 or key_at < 0:
            return None
        brace = text.rfind("{", name_at, key_at)
        if brace < 0 or text[brace + 1:key_at].strip():
            return None
        close = _object_end(text, brace)
        if close is None:
            return None
        spans.append((name_at, brace, close))
        pos = close
    prefix = text[: spans[0][0]]
    middle = text[spans[0][0] + len(_NAMES[0]): spans[0][1]]
    args = text[spans[0][1]: spans[0][2]]
    colon_at = args.index(f'"{_K1}"') + len(_K1) + 2
    colon = args[colon_at: args.index(f'"{_V1}"')]
    comma = args[args.index(f'"{_V1}"') + len(_V1) + 2: args.index(f'"{_K2}"')]
    tail = text[spans[-1][2]:]
    if count == 1:
        suffix, between, after = tail, None, ""
    else:
        gap = text[spans[0][2]: spans[1][0]]
        if not gap.endswith(prefix) or text[spans[1][0] + len(_NAMES[1]): spans[1][1]] != middle:
            return None
        gap = gap[: len(gap) - len(prefix)]
        suffix = os.path.commonprefix([gap, tail])
        between, after = gap[len(suffix):], tail[len(suffix):]
    if not colon.strip() == ":" or comma.strip() != ",":
        return None
    return _Layout(prefix, middle, suffix, colon, comma), between, after


def _object_end(text: str, start: int) -> int | None:
    """Index just after the JSON object starting at `start`, or None."""
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    return end
