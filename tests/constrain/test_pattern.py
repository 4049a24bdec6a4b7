"""Schema patterns and integer ranges in the grammar: calltune.constrain.pattern reads the simple
anchored patterns tool schemas use; llguidance (one regex terminal), llama.cpp (GBNF) and the JSON
format take the values that match and refuse the others; anything else stays a free string."""

from __future__ import annotations

import json
import re

import pytest
from constrain_helpers import gbnf_accepts, lark_accepts

from calltune.constrain.calls import call_grammar
from calltune.constrain.grammar import CharClass, Lit, Repeat
from calltune.constrain.pattern import integer_range, pattern_node
from calltune.formats import get_format
from calltune.formats.functiongemma.syntax import format_call

FG = get_format("functiongemma")
PATTERNS = {
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "time": r"^([01]\d|2[0-3]):[0-5]\d$",
    "currency": "^[A-Z]{3}$",
    "code": r"^(?:ab|c[x-z]?)+\.v[0-9]*$",
    "not a quote": '^[^"]{1,5}$',
}
TOOLS = [{"name": "book", "parameters": {"type": "object", "properties": {
    **{k: {"type": "string", "pattern": p} for k, p in PATTERNS.items()},
    "seats": {"type": "integer", "minimum": 1, "maximum": 6},
    "floor": {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 3},
    "free": {"type": "string", "pattern": "^a|b$"},  # an alternation of anchored halves: read as it is
}, "required": []}}]


@pytest.mark.parametrize(("pattern", "good", "bad"), [
    (PATTERNS["date"], ["2026-12-01"], ["2026-1-01", "tomorrow", "2026-12-011"]),
    (PATTERNS["time"], ["09:30", "23:59", "00:00"], ["24:00", "9:30", "12:60"]),
    (PATTERNS["currency"], ["EUR"], ["eur", "EURO"]),
    (PATTERNS["code"], ["ab.v", "abcxc.v12"], ["ab.w", "cw.v"]),
    (PATTERNS["not a quote"], ["a b", "ümlau"], ['a"b', "toolong", "a<b"]),
])
def test_patterns_take_what_the_regex_takes(pattern, good, bad, gemma_tokenizer, gguf_vocab):
    """Matching values are taken, others refused; a negated class never takes `<` (a marker's start)."""
    key = next(k for k, p in PATTERNS.items() if p == pattern)
    grammar = call_grammar(FG, TOOLS)
    for value, ok in [(v, True) for v in good] + [(v, False) for v in bad]:
        assert (re.search(pattern, value) is not None) == ok or "<" in value  # the cases agree with Python's regex
        reply = format_call("book", {key: value}) + "<start_function_response>"
        assert lark_accepts(grammar, reply, gemma_tokenizer) == ok, (pattern, value)
        assert gbnf_accepts(grammar, reply, gguf_vocab) == ok, (pattern, value)


def test_integer_ranges_are_spelled_out(gemma_tokenizer, gguf_vocab):
    grammar = call_grammar(FG, TOOLS)
    for arguments, ok in [({"seats": 1}, True), ({"seats": 6}, True), ({"seats": 7}, False), ({"seats": 0}, False),
                          ({"floor": -2}, True), ({"floor": 2}, True), ({"floor": 3}, False), ({"floor": -3}, False)]:
        reply = format_call("book", arguments) + "<start_function_response>"
        assert lark_accepts(grammar, reply, gemma_tokenizer) == ok, arguments
        assert gbnf_accepts(grammar, reply, gguf_vocab) == ok, arguments
    assert integer_range({"minimum": 0, "maximum": 1440}) is None  # too many: any integer, as before
    assert integer_range({"minimum": 1}) is None and integer_range({"maximum": 0.5, "minimum": 0}) == [0]


def test_the_json_format_quotes_patterns(llama_tokenizer):
    generic = get_format("generic", tokenizer=llama_tokenizer)
    grammar = call_grammar(generic, TOOLS)
    for value, ok in [("2026-12-01", True), ("12/01/2026", False)]:
        call = json.dumps({"name": "book", "arguments": {"date": value}})
        assert lark_accepts(grammar, f"<tool_call>\n{call}\n</tool_call>\n{generic.stop_strings[0]}",
                            llama_tokenizer) == ok


@pytest.mark.parametrize("pattern", [
    r"\d{4}", "^\\d+", r"\d+$",  # not anchored at both ends: a search, left free
    r"^(?=a)b$", r"^(a)\1$", r"^a+?$", r"^\p{L}+$", r"^[a-z]{1,200}$",  # lookaround, backreference, lazy, Unicode, big
    "^<[a-z]+>$", r'^"\w+"$', r"^a\\b$",  # markers, quotes and backslashes would need escaping
])
def test_patterns_outside_the_subset_stay_free(pattern):
    assert pattern_node(pattern) is None


def test_pattern_nodes():
    assert pattern_node(r"^\d{2}$") == Repeat(CharClass((("0", "9"),)), 2, 2)
    assert pattern_node(r"^a\.b$") == pattern_node("^a[.]b$".replace("[.]", "\\.")) and \
        Lit(".") in pattern_node(r"^a\.b$").items
    assert pattern_node("^.$") == CharClass(negate=True)
    assert pattern_node("^(?:x|y)?$") == Repeat(pattern_node("^x|y$"), 0, 1)
