"""Grammar -> GBNF, llama.cpp's grammar language (llama_sampler_init_grammar, llama-server's `grammar`).

llama.cpp matches a grammar against each token's text, control tokens included (as their text,
e.g. `<escape>`). A Token that is one token of the vocabulary (`tokens`) is written `<escape>`,
which this llama.cpp matches as that token only, never spelled out (as llguidance does); other
Tokens are literals. End-of-generation tokens (`end_tokens`, e.g. <end_of_turn>) are left out:
llama.cpp never matches those as text and allows them exactly where the grammar is complete.
Text that must avoid words becomes a small automaton of rules (calltune.constrain.avoid), as GBNF
has no negation.
"""

from __future__ import annotations

import re

from calltune.constrain.avoid import avoid_automaton
from calltune.constrain.grammar import (UNSAFE_IN_PATTERNS, Alt, CharClass, CharRun, Grammar, JsonChars, Lit, Number,
                                        Pattern, Ref, Repeat, Seq, Text, Token)

_TOKEN_NAME = re.compile(r"<[^<>\s]+>")  # written bare, llama.cpp reads <...> as one token by its text
JSON_ESCAPE = r'"\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


def to_gbnf(grammar: Grammar, end_tokens=(), tokens=()) -> str:
    """GBNF text of `grammar`, its root rule named `root`; Tokens in `end_tokens` are left out,
    those in `tokens` (single tokens of the vocabulary) are matched as tokens."""
    printer = _Printer(frozenset(end_tokens), frozenset(tokens))
    names = grammar.reachable()
    lines = [f"{'root' if name == grammar.root else name} ::= {printer.node(grammar.rules[name])}" for name in names]
    return "\n".join(lines + printer.extra) + "\n"


class _Printer:
    def __init__(self, end_tokens: frozenset, tokens: frozenset):
        self.end_tokens, self.tokens = end_tokens, tokens
        self.extra: list[str] = []
        self._terminals: dict = {}

    def node(self, node) -> str:
        if isinstance(node, Token) and node.text in self.end_tokens:
            return '""'
        if isinstance(node, Token) and node.text in self.tokens and _TOKEN_NAME.fullmatch(node.text):
            return node.text
        if isinstance(node, (Lit, Token)):
            return literal(node.text)
        if isinstance(node, Seq):
            return " ".join(self._grouped(item) for item in node.items
                            if not (isinstance(item, Token) and item.text in self.end_tokens))
        if isinstance(node, Alt):
            return " | ".join(self.node(option) for option in node.options)
        if isinstance(node, Repeat):
            return self._grouped(node.node) + _quantifier(node.min, node.max)
        if isinstance(node, Ref):
            return node.rule
        if isinstance(node, Number):
            return _number(node)
        if isinstance(node, Pattern):
            return self._grouped(node.body)
        if isinstance(node, CharClass):
            return class_of_ranges(node)
        if isinstance(node, CharRun):
            return char_class(" \t\n\r" + node.exclude, negate=True, controls=True) + "+"
        if isinstance(node, (Text, JsonChars)):
            return self._avoiding(node)
        raise TypeError(f"not a grammar node: {node!r}")

    def _grouped(self, node) -> str:
        text = self.node(node)
        return f"({text})" if isinstance(node, (Alt, Seq, Repeat, Pattern)) else text

    def _avoiding(self, node) -> str:
        """Rules of text avoiding node.avoid; returns the start rule's name."""
        if node in self._terminals:
            return self._terminals[node]
        base = f"{'text' if isinstance(node, Text) else 'json-chars'}-{len(self._terminals)}"
        self._terminals[node] = f"{base}-s0"
        json = isinstance(node, JsonChars)
        states = avoid_automaton(node.avoid)
        if not states:  # no words: state 0 alone, every character leads back to it
            states = [None]
        for i, state in enumerate(states):
            moves = state.moves if state else ()
            special = {c for c, target in moves if target != 0} | (set(state.word_chars) if state else set())
            special -= {c for c, target in moves if target == 0}
            stay = char_class("".join(sorted(special | ({'"', "\\"} if json else set()))), negate=True,
                              controls=json)
            options = [f"{stay} {base}-s0"]
            if json:
                options.append(f"{JSON_ESCAPE} {base}-s0")
            for c, target in moves:
                if target != 0 and not (json and (c in '"\\' or ord(c) < 0x20)):
                    options.append(f"{literal(c)} {base}-s{target}")
            self.extra.append(f"{base}-s{i} ::= ({' | '.join(options)})?")
        return self._terminals[node]


def _quantifier(low: int, high: int | None) -> str:
    if (low, high) == (0, 1):
        return "?"
    if high is None:
        return "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    return f"{{{low},{high}}}" if low != high else f"{{{low}}}"


def _number(node: Number) -> str:
    digits = f'("0" | [1-9] [0-9]{{0,{node.max_digits - 1}}})'
    if node.integer:
        return f'"-"? {digits}'
    return f'"-"? {digits} ("." [0-9]{{1,{node.max_digits}}})? ([eE] [-+]? [0-9]{{1,3}})?'


def _escape_char(c: str, in_class: bool) -> str:
    specials = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
    if c in specials:
        return specials[c]
    if (in_class and c in "]^-[") or (not in_class and c == '"'):
        return "\\" + c
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\x{ord(c):02X}"
    return c


def literal(text: str) -> str:
    """A GBNF string literal."""
    return '"' + "".join(_escape_char(c, False) for c in text) + '"'


def char_class(chars: str, *, negate: bool = False, controls: bool = False) -> str:
    """[chars] or [^chars]; `controls` adds the ASCII control characters (a negated class excludes them)."""
    body = "".join(_escape_char(c, True) for c in sorted(set(chars)))
    if controls:
        body += "\\x00-\\x1F"
    if not body:
        return "[^\\x00]" if negate else "[\\x00]"
    return f"[{'^' if negate else ''}{body}]"


def class_of_ranges(node: CharClass) -> str:
    """[a-z0-9] of a CharClass; negated, the unsafe characters are left out too."""
    body = "".join(_escape_char(low, True) + ("" if low == high else "-" + _escape_char(high, True))
                   for low, high in node.ranges)
    if node.negate:
        body += "".join(_escape_char(c, True) for c in UNSAFE_IN_PATTERNS if ord(c) >= 0x20) + "\\x00-\\x1F"
    return f"[{'^' if node.negate else ''}{body}]"
