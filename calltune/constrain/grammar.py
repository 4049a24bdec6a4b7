"""The one grammar representation every engine's constraint is printed from.

A Grammar is a set of named rules over a handful of node types. Builders (calltune.constrain.calls,
calltune.constrain.schema) make one from a request's tools and the chat format; printers turn it
into llama.cpp's GBNF (calltune.constrain.gbnf) or llguidance's Lark (calltune.constrain.lark), so
every engine enforces the same language.

    Lit("call:")                       literal text
    Token("<escape>")                  a control token; printers that can match token ids do so
    Text(avoid=("<escape>",))          any text (newlines included) that contains none of `avoid`
    JsonChars(avoid=...)               the inside of a JSON string, escapes allowed, none of `avoid`
    CharRun(exclude="{}")              a bare word (a FunctionGemma key of a free-form object)
    Number(integer=False)              a number as the formats' parsers read it
    CharClass((("0", "9"),))           one character of a set (inside a Pattern)
    Pattern(body)                      a string of a schema's `pattern`, body of Lit/CharClass/Seq/Alt/Repeat
    Seq(...), Alt(...), Repeat(node, min, max), Ref("rule")
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Token:
    """A control token written as its text (e.g. <escape>); it may also be a plain literal where the
    tokenizer does not know it as a special token."""
    text: str


@dataclass(frozen=True)
class Text:
    """Free text: any characters (`min_chars` or more) with none of the `avoid` strings inside it."""
    avoid: tuple[str, ...] = ()
    min_chars: int = 0


@dataclass(frozen=True)
class JsonChars:
    """Characters of a JSON string body: no raw quote, backslash or control character, escapes
    allowed; none of the `avoid` strings."""
    avoid: tuple[str, ...] = ()


@dataclass(frozen=True)
class CharRun:
    """One or more characters, none of them whitespace, a control character or in `exclude`."""
    exclude: str = ""


@dataclass(frozen=True)
class Number:
    """A JSON number (`integer`: no fraction or exponent), at most `max_digits` integer digits."""
    integer: bool = False
    max_digits: int = 15


UNSAFE_IN_PATTERNS = '<>"\\' + "".join(map(chr, range(0x20))) + "\x7f"  # what a negated class never takes


@dataclass(frozen=True)
class CharClass:
    """One character in `ranges` ((low, high) pairs, inclusive); `negate`: one character in none of
    them and not in UNSAFE_IN_PATTERNS (markers, quotes, backslashes, control characters)."""
    ranges: tuple = ()
    negate: bool = False


@dataclass(frozen=True)
class Pattern:
    """A string of a schema's `pattern` (calltune.constrain.pattern): `body` is made of Lit,
    CharClass, Seq, Alt and Repeat; printers that can write it as one regex terminal do."""
    body: object


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    options: tuple


@dataclass(frozen=True)
class Repeat:
    """`node` repeated min..max times (max None: unbounded)."""
    node: object
    min: int = 0
    max: int | None = None


@dataclass(frozen=True)
class Ref:
    rule: str


Node = Lit | Token | Text | JsonChars | CharRun | Number | CharClass | Pattern | Seq | Alt | Repeat | Ref
NODE_TYPES = (Lit, Token, Text, JsonChars, CharRun, Number, CharClass, Pattern, Seq, Alt, Repeat, Ref)


def seq(*items) -> Node:
    """A sequence with nested sequences flattened and empty literals dropped.

    Neighbouring literals are not joined: llguidance lexes each literal as one lexeme, greedily,
    so `{` followed by `"b": ` must stay two lexemes where another branch continues `{` otherwise."""
    flat: list = []
    for item in items:
        for part in (item.items if isinstance(item, Seq) else (item,)):
            if not (isinstance(part, Lit) and not part.text):
                flat.append(part)
    if len(flat) == 1:
        return flat[0]
    return Seq(tuple(flat)) if flat else Lit("")


def alt(*options) -> Node:
    """An alternation of the distinct options (one option: itself)."""
    unique = tuple(dict.fromkeys(options))
    return unique[0] if len(unique) == 1 else Alt(unique)


def optional(node) -> Node:
    return Repeat(node, 0, 1)


@dataclass
class Grammar:
    """Named rules; `root` is where a generation starts. Rule names are [a-z0-9-] words.

    `closers`: texts that end what is open (the reply, a list, an object), best first, and
    `string_closers` what ends a string; near the end of the token budget the engines prefer them
    (calltune.constrain.wrapup)."""
    rules: dict[str, Node] = field(default_factory=dict)
    root: str = "root"
    closers: tuple[str, ...] = ()
    string_closers: tuple[str, ...] = ()

    def add(self, name: str, node: Node) -> Ref:
        """Define rule `name` (a name already defined with the same node is reused) and refer to it."""
        name = rule_name(name)
        if name in self.rules and self.rules[name] != node:
            base, n = name, 2
            while f"{base}-{n}" in self.rules and self.rules[f"{base}-{n}"] != node:
                n += 1
            name = f"{base}-{n}"
        self.rules[name] = node
        return Ref(name)

    def reachable(self) -> list[str]:
        """Rule names reachable from the root, the root first (printers write these only)."""
        seen, todo = [], [self.root]
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.append(name)
            todo += [r for r in refs(self.rules[name]) if r not in seen]
        return seen


    def token_texts(self) -> set[str]:
        """The texts of every Token in the rules."""
        found, todo = set(), list(self.rules.values())
        while todo:
            node = todo.pop()
            if isinstance(node, Token):
                found.add(node.text)
            elif isinstance(node, Seq):
                todo += node.items
            elif isinstance(node, Alt):
                todo += node.options
            elif isinstance(node, Repeat):
                todo.append(node.node)
        return found


def refs(node) -> list[str]:
    """The rule names a node refers to, in order."""
    if isinstance(node, Ref):
        return [node.rule]
    if isinstance(node, Seq):
        return [r for item in node.items for r in refs(item)]
    if isinstance(node, Alt):
        return [r for option in node.options for r in refs(option)]
    if isinstance(node, Repeat):
        return refs(node.node)
    return []


def rule_name(text: str) -> str:
    """A rule name from any text: lower-case letters, digits and dashes, starting with a letter."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower()).strip("-")
    cleaned = "-".join(part for part in cleaned.split("-") if part)
    return cleaned if cleaned[:1].isalpha() else f"r-{cleaned}" if cleaned else "r"
