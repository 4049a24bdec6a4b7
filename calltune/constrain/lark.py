"""Grammar -> llguidance's Lark dialect (the token masks of the PyTorch, onnxruntime and MLX engines).

A Token the tokenizer knows as a special token is written `<name>`: llguidance then allows that
token id there and nothing spelled out. Text that avoids words is one terminal,
`/any text/ & ~/text containing a word/` (llguidance's regex conjunction and negation).
"""

from __future__ import annotations

import json

from calltune.constrain.grammar import (UNSAFE_IN_PATTERNS, Alt, CharClass, CharRun, Grammar, JsonChars, Lit, Number,
                                        Pattern, Ref, Repeat, Seq, Text, Token)

JSON_CHAR = r'(?:[^"\\\x00-\x1f]|\\(?:["\\\/bfnrt]|u[0-9a-fA-F]{4}))'  # `/` escaped: it ends /.../


def to_lark(grammar: Grammar, special_tokens=frozenset()) -> str:
    """Lark text of `grammar` (start rule `start`); Tokens in `special_tokens` are matched as tokens."""
    printer = _Printer(frozenset(special_tokens))
    lines = [f"{'start' if name == grammar.root else _name(name)}: {printer.node(grammar.rules[name])}"
             for name in grammar.reachable()]
    return "\n".join(lines + printer.terminals) + "\n"


def _name(rule: str) -> str:
    return "r_" + rule.replace("-", "_")


class _Printer:
    def __init__(self, special_tokens: frozenset):
        self.special_tokens = special_tokens
        self.terminals: list[str] = []
        self._named: dict = {}

    def node(self, node) -> str:
        if isinstance(node, Lit):
            return json.dumps(node.text, ensure_ascii=False) if node.text else '""'
        if isinstance(node, Token):
            return node.text if node.text in self.special_tokens else json.dumps(node.text, ensure_ascii=False)
        if isinstance(node, Seq):
            return " ".join(self._grouped(item) for item in node.items)
        if isinstance(node, Alt):
            return " | ".join(self.node(option) for option in node.options)
        if isinstance(node, Repeat):
            return self._grouped(node.node) + _quantifier(node.min, node.max)
        if isinstance(node, Ref):
            return _name(node.rule)
        if isinstance(node, Number):
            return self._terminal(node, _number_regex(node))
        if isinstance(node, Pattern):
            return self._terminal(node, f"/{pattern_regex(node.body)}/")
        if isinstance(node, CharRun):
            return self._terminal(node, "/[^\\s\\x00-\\x1f" + _class_chars(node.exclude) + "]+/")
        if isinstance(node, Text):
            return self._terminal(node, _avoiding("(?s:.+)", node.avoid))
        if isinstance(node, JsonChars):
            return self._terminal(node, _avoiding(JSON_CHAR + "+", node.avoid))
        raise TypeError(f"not a grammar node: {node!r}")

    def _grouped(self, node) -> str:
        text = self.node(node)
        return f"({text})" if isinstance(node, (Alt, Seq, Repeat)) else text

    def _terminal(self, node, definition: str) -> str:
        """A named terminal for `definition`; text nodes may be empty, so they are used as `T?`."""
        if node not in self._named:
            name = f"T{len(self._named)}"
            self._named[node] = name
            self.terminals.append(f"{name}: {definition}")
        name = self._named[node]
        return f"{name}?" if isinstance(node, (Text, JsonChars)) else name


def _avoiding(regex: str, words) -> str:
    if not words:
        return f"/{regex}/"
    alternatives = "|".join(regex_escape(w) for w in words)
    return f"/{regex}/ & ~/(?s:.*(?:{alternatives}).*)/"


def regex_escape(text: str) -> str:
    """`text` as a literal in llguidance's (Rust) regex syntax, inside /.../ (where `<` and `>`
    must stay bare: escaped they are word boundaries)."""
    out = []
    for c in text:
        if c in "\\.+*?()|[]{}^$/&~-#":
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def _class_chars(chars: str) -> str:
    return "".join(map(_class_char, chars))


def _number_regex(node: Number) -> str:
    digits = f"(?:0|[1-9][0-9]{{0,{node.max_digits - 1}}})"
    if node.integer:
        return f"/-?{digits}/"
    return f"/-?{digits}(?:\\.[0-9]{{1,{node.max_digits}}})?(?:[eE][-+]?[0-9]{{1,3}})?/"


def _quantifier(low: int, high: int | None) -> str:
    if (low, high) == (0, 1):
        return "?"
    if high is None:
        return "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    return f"{{{low},{high}}}"


def pattern_regex(node) -> str:
    """A Pattern's body as one regex in llguidance's syntax."""
    if isinstance(node, Lit):
        return regex_escape(node.text)
    if isinstance(node, CharClass):
        body = "".join(_class_char(low) + ("" if low == high else "-" + _class_char(high)) for low, high in node.ranges)
        if node.negate:
            body += "".join(_class_char(c) for c in UNSAFE_IN_PATTERNS)
        return f"[{'^' if node.negate else ''}{body}]"
    if isinstance(node, Seq):
        return "".join(pattern_regex(item) for item in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(pattern_regex(option) for option in node.options) + ")"
    if isinstance(node, Repeat):
        return f"(?:{pattern_regex(node.node)}){_quantifier(node.min, node.max)}"
    raise TypeError(f"not a pattern node: {node!r}")


def _class_char(c: str) -> str:
    if c in "]\\^-[/&~":
        return "\\" + c
    return f"\\x{{{ord(c):x}}}" if ord(c) < 0x20 or ord(c) == 0x7F else c
