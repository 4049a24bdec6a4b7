"""Tool-call metrics: judge one prediction (exact and BFCL-style AST) and aggregate many.

Everything here works on parsed calls ({"name", "arguments"}) and the tools' JSON schemas, so it
does not depend on any chat format or engine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol, Sequence


NUMBER_TOLERANCE = 1e-6
DECIMALS = 4

EXACT = "exact"  # the same calls, byte-for-byte after JSON normalisation
EQUIVALENT = "equivalent"  # not exact, but every call is acceptable under the AST rules
WRONG = "wrong"
UNPARSEABLE = "unparseable"


@dataclass(frozen=True)
class Judgement:
    verdict: str  # EXACT | EQUIVALENT | WRONG | UNPARSEABLE
    exact_match: bool
    ast_correct: bool
    names_match: bool  # the multiset of called tool names is the expected one
    reason: str


def judge(calls: list[dict], parse_error: str | None, expected: list[dict], tools: list[dict],
          accept: list[dict] | None = None) -> Judgement:
    """Judge one example's parsed output against its expected calls ([] = no call expected).

    `accept`, parallel to `expected`, maps argument names of each expected call to every value
    accepted for them (BFCL's possible answers; the expected value counts too, "" = may be left
    out). Exact and AST matching both take any accepted value.
    """
    if accept is not None and len(accept) != len(expected):
        raise ValueError(f"accept has {len(accept)} entries for {len(expected)} expected calls")
    if parse_error is not None:
        return Judgement(UNPARSEABLE, False, False, False, f"parse error: {parse_error}")
    names_match = sorted(c["name"] for c in calls) == sorted(c["name"] for c in expected)
    exact_reason = exact_difference(calls, expected, accept)
    ast_reason = ast_difference(calls, expected, tool_parameters(tools), accept)
    if ast_reason is not None:  # also for an exact match that breaks the schema (10.0 for an integer,
        return Judgement(WRONG, False, False, names_match, ast_reason)  # a required arg left out)
    if exact_reason is None:
        return Judgement(EXACT, True, True, names_match, "exact match" if expected else "no call, as expected")
    return Judgement(EQUIVALENT, False, True, names_match, f"equivalent, not exact: {exact_reason}")


def tool_parameters(tools: list[dict]) -> dict[str, dict]:
    """Map tool name -> parameters JSON schema; accepts OpenAI function tools and bare functions."""
    schemas = {}
    for tool in tools:
        function = tool.get("function", tool)
        schemas[function["name"]] = function.get("parameters") or {"type": "object", "properties": {}}
    return schemas


# ---- accepted values ---------------------------------------------------------------------------

OMITTED = object()  # stands for "the argument left out" among a key's accepted values
LEFT_OUT = ""  # how an accepted-values list (BFCL's possible answers) says "may be left out"


def accepted_values(want: dict, accepted: dict | None, key: str) -> list:
    """Every acceptable value of argument `key` of one expected call (OMITTED: it may be left out).

    Without `accepted`, only the expected value, or OMITTED when the expected call has no `key`.
    """
    values = [want[key]] if key in want else []
    seen = {canonical_json(v) for v in values}
    for value in (accepted or {}).get(key, []):
        if isinstance(value, str) and value == LEFT_OUT:
            value, text = OMITTED, None
        else:
            text = canonical_json(value)
        if text not in seen:  # each value once (the expected one usually is listed too)
            seen.add(text)
            values.append(value)
    return values or [OMITTED]


def _may_be_omitted(values: list) -> bool:
    return any(v is OMITTED for v in values)


def _given(values: list) -> list:
    return [v for v in values if v is not OMITTED]


def _show_accepted(values: list) -> str:
    return show(values[0]) if len(values) == 1 else "one of " + ", ".join(map(show, values))


# ---- exact match -------------------------------------------------------------------------------

def canonical_json(value) -> str:
    """JSON text with sorted keys in which integral floats are written as ints (1.0 == 1)."""
    return json.dumps(_ints_for_integral_floats(value), sort_keys=True, ensure_ascii=False)


def _ints_for_integral_floats(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints_for_integral_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints_for_integral_floats(v) for v in value]
    return value


def exact_difference(calls: list[dict], expected: list[dict], accept: list[dict] | None = None) -> str | None:
    """None when the calls equal the expected ones in order (any accepted value will do for an
    argument); else the first difference."""
    count = _count_difference(calls, expected)
    if count:
        return count
    for position, (got, want) in enumerate(zip(calls, expected), start=1):
        where = f"call {position}: " if len(expected) > 1 else ""
        if got["name"] != want["name"]:
            return f"{where}expected call {want['name']}, got {got['name']}"
        accepted = accept[position - 1] if accept else None
        for key in sorted(set(got["arguments"]) | set(want["arguments"]) | set(accepted or {})):
            values = accepted_values(want["arguments"], accepted, key)
            if key not in got["arguments"]:
                if _may_be_omitted(values):
                    continue
                return f"{where}missing arg '{key}'"
            given = _given(values)
            if not given:
                return f"{where}unexpected arg '{key}'"
            g = got["arguments"][key]
            if all(canonical_json(g) != canonical_json(w) for w in given):
                return f"{where}arg '{key}': expected {_show_accepted(given)}, got {show(g)}"
    return None


def _count_difference(calls: list[dict], expected: list[dict]) -> str | None:
    if not expected and calls:
        return f"expected no call, got {_names(calls)}"
    if expected and not calls:
        return f"expected {_names(expected)}, got no call"
    if len(calls) != len(expected):
        return f"expected {len(expected)} calls ({_names(expected)}), got {len(calls)} ({_names(calls)})"
    return None


def _names(calls: list[dict]) -> str:
    return ", ".join(c["name"] for c in calls)


# ---- AST match (BFCL-style) --------------------------------------------------------------------

def ast_difference(calls: list[dict], expected: list[dict], schemas: dict[str, dict],
                   accept: list[dict] | None = None) -> str | None:
    """None when the calls match the expected ones as a multiset (any order) under the AST rules."""
    count = _count_difference(calls, expected)
    if count:
        return count
    accept = accept or [None] * len(expected)
    reasons = [[call_difference(got, want, schemas.get(want["name"]), accepted)
                for want, accepted in zip(expected, accept)] for got in calls]
    matched = _max_matching([[r is None for r in row] for row in reasons])
    unmatched_wanted = [j for j in range(len(expected)) if j not in matched.values()]
    if not unmatched_wanted:
        return None
    j = unmatched_wanted[0]
    free = [i for i in range(len(calls)) if i not in matched]
    same_name = [i for i in free if calls[i]["name"] == expected[j]["name"]]
    reason = reasons[same_name[0]][j] if same_name else reasons[free[0]][j]
    return f"{expected[j]['name']}: {reason}" if len(expected) > 1 else reason


def _max_matching(compatible: list[list[bool]]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn): returns {row index: column index}."""
    column_owner: dict[int, int] = {}

    def augment(row: int, seen: set[int]) -> bool:
        for col, ok in enumerate(compatible[row]):
            if ok and col not in seen:
                seen.add(col)
                if col not in column_owner or augment(column_owner[col], seen):
                    column_owner[col] = row
                    return True
        return False

    for row in range(len(compatible)):
        augment(row, set())
    return {row: col for col, row in column_owner.items()}


def call_difference(got: dict, want: dict, schema: dict | None, accepted: dict | None = None) -> str | None:
    """None when `got` is an acceptable call for `want` given the tool's parameters schema (and the
    values `accepted` for its arguments, see judge)."""
    if got["name"] != want["name"]:
        return f"expected call {want['name']}, got {got['name']}"
    if not isinstance(got["arguments"], dict):
        return f"arguments: expected object, got {json_type(got['arguments'])}"
    return _object_difference(got["arguments"], want["arguments"], schema, prefix="", accepted=accepted)


def _object_difference(got: dict, want: dict, schema: dict | None, prefix: str,
                       accepted: dict | None = None) -> str | None:
    if schema is None:  # an undeclared tool or object: the expected keys are the whole signature
        schema = {"properties": {k: {} for k in want}, "required": list(want)}
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in got:
            return f"missing required '{prefix}{key}'"
    for key in got:
        if key not in properties:
            return f"unknown arg '{prefix}{key}'"
    for key in properties:
        reason = _optional_difference(key, got, accepted_values(want, accepted, key), properties[key], prefix,
                                      off_schema_ok=accepted is not None)
        if reason:
            return reason
    return None


def _optional_difference(key: str, got: dict, values: list, schema: dict, prefix: str,
                         off_schema_ok: bool = False) -> str | None:
    """Compare one property with its accepted values, allowing an omitted value where that is
    accepted or the schema default stands in for an accepted value. With `off_schema_ok` (the
    values were listed by an accept), an accepted value that breaks the tool's own schema (BFCL
    has a few) is compared by its own JSON type, as exact match would take it."""
    name = f"{prefix}{key}"
    given = _given(values)
    if key in got:
        reasons = [value_difference(got[key], w, schema, name) for w in given]
        if None in reasons:
            return None
        if off_schema_ok and any(value_difference(w, w, schema, name) is not None
                                 and value_difference(got[key], w, None, name) is None for w in given):
            return None
        if _may_be_omitted(values) and "default" in schema and \
                value_difference(got[key], schema["default"], schema, name) is None:
            return None
        if not reasons:
            return f"unexpected arg '{name}': expected it omitted, got {show(got[key])}"
        others = len(reasons) - 1
        return reasons[0] + (f" (nor any of {others} other accepted value{'s' * (others > 1)})" if others else "")
    if _may_be_omitted(values):
        return None
    if "default" in schema and any(value_difference(schema["default"], w, schema, name) is None for w in given):
        return None
    return f"missing arg '{name}': expected {_show_accepted(given)}"


def value_difference(got, want, schema: dict | None, name: str) -> str | None:
    """None when `got` is acceptable for the expected value `want` under the param's schema."""
    schema = schema or {}
    declared = schema.get("type") or json_type(want, integers_as_numbers=True)
    types = declared if isinstance(declared, list) else [declared]
    kind = next((t for t in types if is_json_type(got, t)), None)
    if kind is None:
        return f"arg '{name}': expected {' or '.join(types)}, got {json_type(got)} {show(got)}"
    if "enum" in schema and kind == "string" and normalize_string(got) not in {
        normalize_string(v) for v in schema["enum"] if isinstance(v, str)
    }:
        return f"arg '{name}': {show(got)} is not one of {', '.join(map(show, schema['enum']))}"
    if kind == "array":
        return _array_difference(got, want, schema.get("items"), name)
    if kind == "object":
        if not isinstance(want, dict):
            return f"arg '{name}': expected {show(want)}, got {show(got)}"
        return _object_difference(got, want, schema if "properties" in schema else None, prefix=f"{name}.")
    if not _scalars_equal(got, want, kind):
        return f"arg '{name}': expected {show(want)}, got {show(got)}"
    return None


def _array_difference(got: list, want, item_schema: dict | None, name: str) -> str | None:
    if not isinstance(want, list):
        return f"arg '{name}': expected {show(want)}, got {show(got)}"
    if len(got) != len(want):
        return f"arg '{name}': expected {len(want)} items, got {len(got)}"
    for i, (g, w) in enumerate(zip(got, want)):
        reason = value_difference(g, w, item_schema, f"{name}[{i}]")
        if reason:
            return reason
    return None


def _scalars_equal(got, want, kind: str) -> bool:
    if kind in ("integer", "number"):
        return is_json_type(want, "number") and abs(float(got) - float(want)) <= NUMBER_TOLERANCE
    if kind == "string":
        return isinstance(want, str) and normalize_string(got) == normalize_string(want)
    if kind == "boolean":
        return isinstance(want, bool) and got is want
    return want is None  # null


def is_json_type(value, kind: str) -> bool:
    """JSON-schema type test; bools are not numbers, ints are numbers."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    checks = {"string": str, "boolean": bool, "array": list, "object": dict}
    if kind in checks:
        return isinstance(value, checks[kind])
    return kind == "null" and value is None


def json_type(value, integers_as_numbers: bool = False) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number" if integers_as_numbers else "integer"
    for kind, cls in (("number", float), ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, cls):
            return kind
    return "null"


_IGNORED = re.compile(r"[\s,./\-_*^]+")  # bfcl-eval's standardize_string drops these (and spaces)


def normalize_string(text: str) -> str:
    """BFCL's string rule: casefold, drop whitespace and , . / - _ * ^ ('San Francisco, CA' ==
    'sanfrancisco ca', '2x**2' == '2x^2'); other characters count ('C#' != 'C')."""
    return _IGNORED.sub("", text.casefold()).replace("'", '"')


def show(value, limit: int = 60) -> str:
    """A short readable rendering of a value for reasons: strings in single quotes, else JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- aggregation -------------------------------------------------------------------------------

class Prediction(Protocol):
    """What aggregation reads of a judged prediction (calltune.evaluate.predictions.Prediction)."""
    calls: list[dict]
    expected: list[dict]
    parse_error: str | None
    latency_s: float
    n_generated_tokens: int
    judgement: Judgement


def aggregate(predictions: Sequence[Prediction], size_mb: float | None = None) -> dict:
    """The metrics dict of one target; a rate with no examples to rate is None.

    tokens_per_s is end to end: all generated tokens over all generation wall time, prompt
    processing included, which is what a user of the artifact waits for.
    """
    needs_call = [p for p in predictions if p.expected]
    no_call = [p for p in predictions if not p.expected]
    latencies = sorted(p.latency_s for p in predictions)
    total_time = sum(latencies)
    metrics = {
        "n": len(predictions),
        "exact_match": _share(predictions, lambda p: p.judgement.exact_match),
        "ast_accuracy": _share(predictions, lambda p: p.judgement.ast_correct),
        "tool_name_accuracy": _share(predictions, lambda p: p.judgement.names_match),
        "parse_valid_rate": _share(predictions, lambda p: p.parse_error is None),
        "call_rate": _share(needs_call, lambda p: bool(p.calls)),
        "irrelevance_accuracy": _share(no_call, lambda p: p.parse_error is None and not p.calls),
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "tokens_per_s": sum(p.n_generated_tokens for p in predictions) / total_time if total_time > 0 else None,
        "size_mb": size_mb,
        "per_tool": per_tool_accuracy(predictions),
    }
    return _rounded(metrics)


def per_tool_accuracy(predictions: Sequence[Prediction]) -> dict[str, float]:
    """For each expected tool: AST accuracy over the examples whose expected calls include it."""
    tools = sorted({c["name"] for p in predictions for c in p.expected})
    return {
        tool: _share([p for p in predictions if any(c["name"] == tool for c in p.expected)],
                     lambda p: p.judgement.ast_correct)
        for tool in tools
    }


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        return None
    rank = q * (len(sorted_values) - 1)
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _share(items: Sequence, ok) -> float | None:
    return sum(1 for item in items if ok(item)) / len(items) if items else None


def _rounded(value):
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
