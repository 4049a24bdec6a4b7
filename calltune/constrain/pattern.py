"""A JSON Schema `pattern` as grammar nodes, for the simple anchored patterns tool schemas use.

    pattern_node("^\\d{4}-\\d{2}-\\d{2}$")   # Seq(Repeat(CharClass 0-9, 4, 4), Lit("-"), ...)

Understood: literal characters and escapes (`\\.`, `\\-`, ...), `\\d`, `\\w`, `\\s`, `.`, classes
`[...]` and `[^...]` with ranges, groups `(...)` and `(?:...)` with `|`, quantifiers `?`, `*`,
`+`, `{n}`, `{n,}`, `{n,m}`. The pattern must be anchored at both ends (`^...$`): JSON Schema's
pattern is a search, and an unanchored one constrains too little to be worth a grammar. Anything
else (backreferences, lookarounds, lazy quantifiers, Unicode classes, ...) gives None: the value is
then any string, as before. So does a pattern that can write `<` or `>` (the start of a chat
format's marker), a quote, a backslash or a control character, which the format's string syntax
would have to escape; a negated class or `.` leaves those out.
"""

from __future__ import annotations

import math

from calltune.constrain.grammar import UNSAFE_IN_PATTERNS as UNSAFE
from calltune.constrain.grammar import CharClass, Lit, Repeat, alt, seq

MAX_REPEAT = 64  # {n,m} bounds beyond this are not spelled out
DIGITS = (("0", "9"),)
WORD = (("0", "9"), ("A", "Z"), ("_", "_"), ("a", "z"))
SPACE = ((" ", " "),)  # \t, \n, \r, \f, \v: control characters, left out


class _Unsupported(Exception):
    pass


def pattern_node(pattern: str):
    """The node of strings matching an anchored `pattern` (without the format's quotes), or None."""
    if not isinstance(pattern, str) or not pattern.startswith("^") or not pattern.endswith("$") \
            or pattern.endswith("\\$") or len(pattern) < 2:
        return None
    try:
        parser = _Parser(pattern[1:-1])
        node = parser.alternation()
        if parser.pos != len(parser.text):
            raise _Unsupported(parser.pos)
        return node
    except _Unsupported:
        return None


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        c = self.peek()
        if not c:
            raise _Unsupported("end")
        self.pos += 1
        return c

    def alternation(self):
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return alt(*options)

    def sequence(self):
        items = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return seq(*items) if items else Lit("")

    def atom(self):
        c = self.take()
        if c == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise _Unsupported("group flags or lookaround")
            node = self.alternation()
            if self.take() != ")":
                raise _Unsupported("group")
            return node
        if c == "[":
            return self.char_class()
        if c == ".":
            return CharClass(negate=True)
        if c == "\\":
            return self.escape(in_class=False)
        if c in "^$*+?{})]":
            raise _Unsupported(c)
        return _literal(c)

    def escape(self, in_class: bool):
        c = self.take()
        shorthand = {"d": DIGITS, "w": WORD, "s": SPACE}
        if c in shorthand:
            return shorthand[c] if in_class else CharClass(shorthand[c])
        if c.isalnum():  # \b, \D, \p{..}, \1, \x41, ...: not understood
            raise _Unsupported("\\" + c)
        return ((c, c),) if in_class else _literal(c)

    def char_class(self):
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: list[tuple[str, str]] = []
        first = True
        while first or self.peek() != "]":
            first = False
            c = self.take()
            if c == "\\":
                ranges += self.escape(in_class=True)
                continue
            if c == "[":
                raise _Unsupported("nested class")
            if self.peek() == "-" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.pos += 1
                high = self.take()
                if high == "\\":
                    (low_high,) = self.escape(in_class=True)
                    high = low_high[0]
                if high < c:
                    raise _Unsupported("range")
                ranges.append((c, high))
            else:
                ranges.append((c, c))
        self.pos += 1  # ]
        node = CharClass(tuple(ranges), negate)
        if not negate and any(_overlaps(r, UNSAFE) for r in ranges):
            raise _Unsupported("unsafe character")
        return node

    def quantified(self, node):
        c = self.peek()
        if c not in ("?", "*", "+", "{"):
            return node
        self.pos += 1
        if c == "{":
            end = self.text.find("}", self.pos)
            if end < 0:
                raise _Unsupported("{")
            body, self.pos = self.text[self.pos:end], end + 1
            low_text, _, high_text = body.partition(",")
            if not low_text.isdigit() or (high_text and not high_text.isdigit()):
                raise _Unsupported("{" + body + "}")
            low = int(low_text)
            high = low if "," not in body else (int(high_text) if high_text else None)
            if low > MAX_REPEAT or (high is not None and (high < low or high > MAX_REPEAT)):
                raise _Unsupported("repeat bounds")
        else:
            low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[c]
        if self.peek() in ("?", "+"):
            raise _Unsupported("lazy or possessive quantifier")
        return Repeat(node, low, high)


def _literal(c: str):
    if c in UNSAFE:
        raise _Unsupported("unsafe character")
    return Lit(c)


def _overlaps(char_range: tuple[str, str], chars: str) -> bool:
    low, high = char_range
    return any(low <= c <= high for c in chars)


def integer_range(schema: dict, max_values: int = 100):
    """The integers a schema's minimum/maximum (exclusive ones too) allow, when there are at most
    `max_values` of them; else None."""
    def bound(key):
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low = [b for b in (bound("minimum"), None if bound("exclusiveMinimum") is None else bound("exclusiveMinimum") + 1)
           if b is not None]
    high = [b for b in (bound("maximum"), None if bound("exclusiveMaximum") is None else bound("exclusiveMaximum") - 1)
            if b is not None]
    if not low or not high:
        return None
    first, last = math.ceil(max(low)), math.floor(min(high))
    if last < first or last - first + 1 > max_values:
        return None
    return list(range(first, last + 1))
