"""Parse FunctionGemma output into calls with a recursive-descent parser.

Grammar of one call (whitespace between tokens is allowed):
    call   := "<start_function_call>" "call:" NAME object "<end_function_call>"
    object := "{" [key ":" value ("," key ":" value)*] "}"
    list   := "[" [value ("," value)*] "]"
    value  := "<escape>" any text "<escape>" | object | list | number | true | false | null
    key    := bare text without :{}[], or an <escape> string
Text stops at <start_function_response>, <end_of_turn> or <eos> (stop tokens); a string may
contain any of them, and `{}`,`,:`, because strings are read whole between <escape> pairs.
"""

from __future__ import annotations

import re

from calltune.formats.base import ParseResult
from calltune.formats.functiongemma.syntax import ESCAPE

START_CALL = "<start_function_call>"
END_CALL = "<end_function_call>"
STOP_MARKERS = ("<start_function_response>", "<end_of_turn>", "<eos>")
MAX_DEPTH = 64

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_BARE_KEY = re.compile(r"[^\s:{}\[\],<>]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_WHITESPACE = re.compile(r"\s*")
_LITERALS = {"true": True, "false": False, "null": None}


class _Fault(Exception):
    """Why a call could not be read; becomes ParseResult.error, never leaves this module."""


def parse_functiongemma(text: str) -> ParseResult:
    """Calls and surrounding text of one generation; never raises on model output."""
    if not isinstance(text, str):
        return ParseResult(error=f"expected text, got {type(text).__name__}")
    calls, content, pos = [], [], 0
    while True:
        start, marker = _next_marker(text, pos)
        content.append(text[pos:start])
        if marker != START_CALL:
            break
        try:
            call, pos = _Reader(text, start).call()
        except _Fault as fault:
            return ParseResult(calls, _joined(content), str(fault))
        calls.append(call)
    return ParseResult(calls, _joined(content), None)


def _next_marker(text: str, pos: int) -> tuple[int, str | None]:
    found = [(i, m) for m in (START_CALL, *STOP_MARKERS) if (i := text.find(m, pos)) >= 0]
    return min(found) if found else (len(text), None)


def _joined(parts: list[str]) -> str:
    return "".join(parts).strip()


class _Reader:
    def __init__(self, text: str, start: int):
        self.text, self.start, self.pos = text, start, start + len(START_CALL)

    def call(self) -> tuple[dict, int]:
        self._expect("call:")
        name = self._match(_NAME, "a function name")
        arguments = self._object(depth=1)
        self._skip_space()
        if self.pos >= len(self.text):
            raise _Fault(f"missing {END_CALL} after the call at position {self.start} (output truncated)")
        self._expect(END_CALL)
        return {"name": name, "arguments": arguments}, self.pos

    def _value(self, depth: int):
        self._skip_space()
        if depth > MAX_DEPTH:
            raise _Fault(f"nesting deeper than {MAX_DEPTH} at position {self.pos}")
        text, pos = self.text, self.pos
        if text.startswith(ESCAPE, pos):
            return self._string()
        if text.startswith("{", pos):
            return self._object(depth)
        if text.startswith("[", pos):
            return self._list(depth)
        for word, value in _LITERALS.items():
            if text.startswith(word, pos):
                self.pos += len(word)
                return value
        number = _NUMBER.match(text, pos)
        if number:
            self.pos = number.end()
            return float(number.group()) if number.group(1) or number.group(2) else int(number.group())
        raise self._unexpected("a value")

    def _object(self, depth: int) -> dict:
        self._skip_space()
        self._expect("{")
        result: dict = {}
        if self._take("}"):
            return result
        while True:
            self._skip_space()
            key_pos = self.pos
            key = self._string() if self.text.startswith(ESCAPE, self.pos) else self._match(_BARE_KEY, "a key")
            if key in result:
                raise _Fault(f"duplicate key {key!r} at position {key_pos}")
            self._expect(":")
            result[key] = self._value(depth + 1)
            if not self._separator("}"):
                return result

    def _list(self, depth: int) -> list:
        self._expect("[")
        result: list = []
        if self._take("]"):
            return result
        while True:
            result.append(self._value(depth + 1))
            if not self._separator("]"):
                return result

    def _separator(self, closer: str) -> bool:
        """Consume "," (True: more items follow) or the closer (False)."""
        self._skip_space()
        if self._take(","):
            return True
        if self._take(closer):
            return False
        raise self._unexpected(f"',' or '{closer}'")

    def _string(self) -> str:
        begin = self.pos
        end = self.text.find(ESCAPE, begin + len(ESCAPE))
        if end < 0:
            raise _Fault(f"unterminated string starting at position {begin} (output truncated)")
        self.pos = end + len(ESCAPE)
        return self.text[begin + len(ESCAPE):end]

    def _take(self, literal: str) -> bool:
        self._skip_space()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def _expect(self, literal: str) -> None:
        if not self._take(literal):
            raise self._unexpected(repr(literal))

    def _match(self, pattern: re.Pattern, what: str) -> str:
        self._skip_space()
        found = pattern.match(self.text, self.pos)
        if not found:
            raise self._unexpected(what)
        self.pos = found.end()
        return found.group()

    def _skip_space(self) -> None:
        self.pos = _WHITESPACE.match(self.text, self.pos).end()

    def _unexpected(self, wanted: str) -> _Fault:
        if self.pos >= len(self.text):
            return _Fault(f"unterminated call starting at position {self.start}: output ends at "
                          f"position {self.pos} where {wanted} was expected")
        return _Fault(f"unexpected character {self.text[self.pos]!r} at position {self.pos}, expected {wanted}")
