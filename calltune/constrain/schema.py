"""A tool's JSON Schema -> grammar rules for its argument values, in a format's value syntax.

Covered: string (FunctionGemma: between <escape> tokens; JSON: a quoted string), number, integer,
boolean, null, enum and const (exactly the listed values), arrays (of `items`, min/maxItems),
objects with `properties` (only declared keys, every `required` one, in the format's key order),
free-form objects and values where the schema says nothing, `type` lists, anyOf/oneOf; a string's
anchored `pattern` in the subset calltune.constrain.pattern reads (`^\\d{4}-\\d{2}-\\d{2}$`,
`^[A-Z]{3}$`, ...), and an integer's minimum/maximum when they allow at most 100 values. Other
keywords (format, other patterns and ranges, ...) are not enforced: the value keeps its type.
"""

from __future__ import annotations

import json

from calltune.constrain.grammar import (CharRun, Grammar, JsonChars, Lit, Number, Pattern, Ref, Repeat, Text, Token,
                                        alt, optional, seq)
from calltune.constrain.pattern import integer_range, pattern_node
from calltune.formats.functiongemma.syntax import ESCAPE, format_value, sorted_items

MAX_ITEMS_SPELLED = 8  # minItems/maxItems up to this are spelled out; beyond, only the minimum is
SCALAR_TYPES = ("string", "number", "integer", "boolean", "null")


class ValueSyntax:
    """How one format writes values: FunctionGemma's `{k:<escape>v<escape>}` or JSON."""

    name = ""
    colon = ":"
    comma = ","
    sort_keys = False

    def __init__(self, avoid: tuple[str, ...] = ()):
        self.avoid = tuple(avoid)  # text no string may contain (stop strings, markers)

    def literal(self, value) -> str:
        raise NotImplementedError

    def key(self, name: str) -> str:
        raise NotImplementedError

    def string(self):
        raise NotImplementedError

    def quoted(self, body):
        """A string whose characters are `body` (a Pattern)."""
        raise NotImplementedError

    def free_key(self):
        raise NotImplementedError

    def ordered(self, properties: dict) -> list:
        return sorted_items(properties) if self.sort_keys else list(properties.items())


class FunctionGemmaValues(ValueSyntax):
    name = "functiongemma"
    sort_keys = True  # calls are written with sorted keys (FORMAT.md)

    def literal(self, value) -> str:
        return format_value(value)

    def key(self, name: str) -> str:
        return name

    def string(self):
        return seq(Token(ESCAPE), Text(avoid=(ESCAPE, *self.avoid)), Token(ESCAPE))

    def quoted(self, body):
        return seq(Token(ESCAPE), body, Token(ESCAPE))

    def free_key(self):
        return CharRun(exclude=":{}[],<>")

    def literal_node(self, value):
        """Strings are <escape> tokens around text: the tokens stay tokens."""
        if isinstance(value, str):
            return seq(Token(ESCAPE), Lit(value), Token(ESCAPE))
        return Lit(self.literal(value))


class JsonValues(ValueSyntax):
    name = "json"

    def __init__(self, avoid: tuple[str, ...] = (), colon: str = ": ", comma: str = ", "):
        super().__init__(avoid)
        self.colon, self.comma = colon, comma

    def literal(self, value) -> str:
        separators = (self.comma, self.colon)
        return json.dumps(value, ensure_ascii=False, separators=separators)

    def key(self, name: str) -> str:
        return json.dumps(name, ensure_ascii=False)

    def string(self):
        return seq(Lit('"'), JsonChars(avoid=self.avoid), Lit('"'))

    def quoted(self, body):
        return seq(Lit('"'), body, Lit('"'))

    def free_key(self):
        return self.string()

    def literal_node(self, value):
        """Strings are quote, body, quote: three lexemes, like a free string (see grammar.seq)."""
        if isinstance(value, str):
            return seq(Lit('"'), Lit(self.literal(value)[1:-1]), Lit('"'))
        return Lit(self.literal(value))


class SchemaRules:
    """Adds the rules of argument values to a Grammar, one rule per named schema position."""

    def __init__(self, grammar: Grammar, syntax: ValueSyntax, minimal: bool = False):
        self.g, self.syntax, self.minimal = grammar, syntax, minimal  # minimal: required keys only
        self._any: Ref | None = None

    def arguments(self, parameters, name: str):
        """The node of a tool's argument object (its `parameters` schema)."""
        schema = parameters if isinstance(parameters, dict) else {}
        if "properties" not in schema:  # no declared arguments: an empty object only, or anything
            return Lit("{}") if not schema.get("additionalProperties") else self.any_object()
        return self.object(schema, name)

    def value(self, schema, name: str):
        """The node of one value of `schema` (a rule named after its position `name`)."""
        if not isinstance(schema, dict) or not schema:
            return self.any_value()
        if "const" in schema:
            return self.syntax.literal_node(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return alt(*(self.syntax.literal_node(v) for v in schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                rest = {k: v for k, v in schema.items() if k != key}
                return alt(*(self.value({**rest, **s} if isinstance(s, dict) else s, f"{name}-{i}")
                             for i, s in enumerate(schema[key])))
        kind = schema.get("type")
        if isinstance(kind, list):
            return alt(*(self.value({**schema, "type": k}, f"{name}-{k}") for k in kind if isinstance(k, str))) \
                if kind else self.any_value()
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        return self._typed(kind, schema, name)

    def _typed(self, kind, schema: dict, name: str):
        if kind == "string":
            body = pattern_node(schema.get("pattern"))
            return self.syntax.string() if body is None else self.syntax.quoted(Pattern(body))
        if kind == "integer" and (values := integer_range(schema)) is not None:
            return alt(*(Lit(str(v)) for v in values))
        if kind in ("number", "integer"):
            return Number(integer=kind == "integer")
        if kind == "boolean":
            return alt(Lit("true"), Lit("false"))
        if kind == "null":
            return Lit("null")
        if kind == "array":
            return self.array(schema, name)
        if kind == "object":
            return self.object(schema, name) if schema.get("properties") else self.any_object()
        return self.any_value()

    def array(self, schema: dict, name: str):
        item = self.value(schema.get("items"), f"{name}-item")
        low = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        high = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
        return self.g.add(name, seq(Lit("["), self.list_of(item, max(low, 0), high), Lit("]")))

    def list_of(self, item, low: int = 0, high: int | None = None):
        """`item` separated by commas, low..high times."""
        low = min(low, MAX_ITEMS_SPELLED)
        if high is not None and high < low:
            high = low
        more = Repeat(seq(Lit(self.syntax.comma), item), max(low - 1, 0), None if high is None else max(high - 1, 0))
        if high == 0:
            return Lit("")
        items = seq(item, more)
        return items if low > 0 else optional(items)

    def object(self, schema: dict, name: str):
        """Declared keys only, every required one, in the syntax's order; optional ones may be left out."""
        required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
        props = [(key, key in required, self.value(sub, f"{name}-{key}"))
                 for key, sub in self.syntax.ordered(schema.get("properties") or {})
                 if key in required or not self.minimal]
        return self.g.add(name, seq(Lit("{"), self._members(props, 0, True, name, {}), Lit("}")))

    def _members(self, props: list, start: int, first: bool, name: str, memo: dict):
        """Members from `start` on: each optional one may be skipped; the first written has no comma.
        One rule per (start, first), kept in `memo`: 2n rules for n keys, however many are optional."""
        if (start, first) not in memo:
            memo[start, first] = self._members_node(props, start, first, name, memo)
        return memo[start, first]

    def _members_node(self, props: list, start: int, first: bool, name: str, memo: dict):
        options = []
        for j in range(start, len(props)):
            key, required, node = props[j]
            member = seq(Lit("" if first else self.syntax.comma), Lit(self.syntax.key(key) + self.syntax.colon),
                         node, self._members(props, j + 1, False, name, memo))
            options.append(member)
            if required:
                break
        if not any(required for _, required, _ in props[start:]):
            options.append(Lit(""))
        if not options:
            return Lit("")
        node = alt(*options)
        if len(options) == 1:
            return node
        return self.g.add(f"{name}-from-{start}{'' if first else '-more'}", node)

    def any_value(self) -> Ref:
        """Any value of the syntax (recursive: objects and lists of any values)."""
        if self._any is None:
            self._any = Ref("any-value")
            ref = self._any
            item = seq(self.syntax.free_key(), Lit(self.syntax.colon), ref)
            node = alt(self.syntax.string(), Number(), Lit("true"), Lit("false"), Lit("null"),
                       seq(Lit("{"), self.list_of(item), Lit("}")), seq(Lit("["), self.list_of(ref), Lit("]")))
            self.g.rules["any-value"] = node
        return self._any

    def any_object(self):
        item = seq(self.syntax.free_key(), Lit(self.syntax.colon), self.any_value())
        return self.g.add("any-object", seq(Lit("{"), self.list_of(item), Lit("}")))
