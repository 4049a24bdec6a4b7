"""Parse JSON tool calls: Hermes `<tool_call>{…}</tool_call>` tags, or bare JSON objects / lists of
`{"name", "arguments"}` (Llama 3.x writes "parameters"), also inside ``` code fences.

JSON is read with json's own decoder (raw_decode); regexes only locate where a call may start.
"""

from __future__ import annotations

import json
import re

from calltune.formats.base import ParseResult

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_DECODER = json.JSONDecoder()
_BARE_CALL_START = re.compile(r'\{\s*"name"\s*:|\[\s*\{\s*"name"\s*:')
_FENCE = re.compile(r"```[\w-]*\n?")
_WHITESPACE = re.compile(r"\s*")


class _Fault(Exception):
    """Why the calls could not be read; becomes ParseResult.error."""


def parse_generic(text: str, stop_strings=()) -> ParseResult:
    """Calls and surrounding text of one generation; never raises on model output."""
    if not isinstance(text, str):
        return ParseResult(error=f"expected text, got {type(text).__name__}")
    text = _cut_at_stop(text, stop_strings)
    calls: list[dict] = []
    content: list[str] = []
    reader = _read_tagged if TOOL_CALL_OPEN in text else _read_bare
    try:
        reader(text, calls, content)
    except _Fault as fault:
        return ParseResult(calls, "".join(content).strip(), str(fault))
    joined = "".join(content)
    return ParseResult(calls, (_FENCE.sub("", joined) if calls else joined).strip(), None)


def _cut_at_stop(text: str, stop_strings) -> str:
    cuts = [i for stop in stop_strings if stop and (i := text.find(stop)) >= 0]
    return text[: min(cuts)] if cuts else text


def _read_tagged(text: str, calls: list, content: list) -> None:
    pos = 0
    while (start := text.find(TOOL_CALL_OPEN, pos)) >= 0:
        content.append(text[pos:start])
        value, end = _decode(text, start + len(TOOL_CALL_OPEN))
        close = _WHITESPACE.match(text, end).end()
        if not text.startswith(TOOL_CALL_CLOSE, close):
            if close >= len(text):
                raise _Fault(f"missing {TOOL_CALL_CLOSE} after the call at position {start} (output truncated)")
            raise _Fault(f"unexpected character {text[close]!r} at position {close}, expected {TOOL_CALL_CLOSE}")
        calls.extend(_as_calls(value, start))
        pos = close + len(TOOL_CALL_CLOSE)
    content.append(text[pos:])


def _read_bare(text: str, calls: list, content: list) -> None:
    pos = 0
    while found := _BARE_CALL_START.search(text, pos):
        content.append(text[pos:found.start()])
        value, pos = _decode(text, found.start())
        calls.extend(_as_calls(value, found.start()))
    content.append(text[pos:])


def _decode(text: str, pos: int):
    pos = _WHITESPACE.match(text, pos).end()
    if pos >= len(text):
        raise _Fault(f"output ends at position {pos} where a JSON call was expected (output truncated)")
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as e:
        truncated = " (output truncated)" if e.pos >= len(text) or "Unterminated" in e.msg else ""
        where = "position" if e.msg.endswith(" at") else "at position"
        raise _Fault(f"invalid JSON: {e.msg} {where} {e.pos}{truncated}") from None


def _as_calls(value, pos: int) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    return [_as_call(item, pos) for item in items]


def _as_call(item, pos: int) -> dict:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise _Fault(f'the call at position {pos} is not an object with a string "name"')
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise _Fault(f"arguments of the call at position {pos} are a string that is not JSON: {e.msg}") from None
    if not isinstance(arguments, dict):
        raise _Fault(f'"arguments" of the call at position {pos} is not an object')
    return {"name": item["name"], "arguments": arguments}
