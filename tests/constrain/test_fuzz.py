"""Hypothesis-fuzzed tool schemas: every grammar compiles in llguidance and llama.cpp, and takes a
valid call of its tool in both chat formats; web/grammar.js (the browser's engine, in Node) takes the
same calls and refuses them made invalid."""

from __future__ import annotations

import json
from pathlib import Path

from constrain_helpers import WEATHER, gbnf_accepts, gbnf_of, lark_accepts
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calltune.constrain import Constraint
from calltune.constrain.calls import call_grammar
from calltune.engines.libllama import GrammarSampler
from calltune.formats import get_format
from calltune.formats.functiongemma.syntax import format_call

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="<", exclude_categories=("Cs", "Cc")), max_size=6)
PATTERN_SAMPLES = {r"^\d{4}-\d{2}-\d{2}$": "2026-12-01", "^[A-Z]{3}$": "EUR", r"^([01]\d|2[0-3]):[0-5]\d$": "09:30"}
LEAVES = st.one_of(
    st.sampled_from([{"type": t} for t in ("string", "integer", "number", "boolean", "null")]),
    st.builds(lambda values: {"type": "string", "enum": values}, st.lists(TEXT, min_size=1, max_size=3, unique=True)),
    st.builds(lambda values: {"enum": values}, st.lists(st.integers(-99, 99), min_size=1, max_size=3, unique=True)),
    st.just({}),
    st.just({"type": ["string", "null"]}),
    st.sampled_from([{"type": "string", "pattern": p} for p in PATTERN_SAMPLES]),
    st.just({"type": "integer", "minimum": 1, "maximum": 5}),
)


def _object(children):
    return st.builds(lambda props, flags: {"type": "object", "properties": props,
                                           "required": [k for k, f in zip(props, flags) if f]},
                     st.dictionaries(NAMES, children, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4))


SCHEMAS = st.recursive(LEAVES, lambda children: st.one_of(
    st.builds(lambda items, low: {"type": "array", "items": items, "minItems": low}, children, st.integers(0, 2)),
    _object(children),
    st.builds(lambda options: {"anyOf": options}, st.lists(children, min_size=1, max_size=2)),
), max_leaves=8)
TOOLS = st.lists(st.builds(lambda name, params: {"name": name, "parameters": params}, NAMES,
                           _object(SCHEMAS)), min_size=1, max_size=3, unique_by=lambda t: t["name"])


def instance(schema, full: bool):
    """A value valid under `schema` (full: every optional property too)."""
    if not isinstance(schema, dict) or not schema:
        return {"any": [1, "x"]}
    if "enum" in schema:
        return schema["enum"][-1]
    if "anyOf" in schema:
        return instance(schema["anyOf"][-1], full)
    if "pattern" in schema:
        return PATTERN_SAMPLES[schema["pattern"]]
    if "minimum" in schema:
        return schema["minimum"]
    kind = schema["type"][0] if isinstance(schema["type"], list) else schema["type"]
    if kind == "object":
        return {k: instance(s, full) for k, s in schema["properties"].items() if full or k in schema["required"]}
    if kind == "array":
        return [instance(schema["items"], full)] * max(schema["minItems"], 1 if full else 0)
    return {"string": "a: {b}, [c]", "integer": -12, "number": 2.5, "boolean": True, "null": None}[kind]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(tools=TOOLS, full=st.booleans())
def test_fuzzed_schemas_compile_and_take_valid_calls(tools, full, gemma_tokenizer, llama_tokenizer, gguf_vocab):
    fg = call_grammar(get_format("functiongemma"), tools)
    Constraint(fg).token_mask(gemma_tokenizer)  # raises if llguidance rejects it
    GrammarSampler(gguf_vocab, gbnf_of(fg, gguf_vocab))  # raises if llama.cpp rejects it
    tool = tools[-1]
    arguments = instance(tool["parameters"], full)
    text = format_call(tool["name"], arguments) + "<start_function_response>"
    assert lark_accepts(fg, text, gemma_tokenizer), text
    assert gbnf_accepts(fg, text, gguf_vocab), text

    generic = get_format("generic", tokenizer=llama_tokenizer)
    grammar = call_grammar(generic, tools)
    GrammarSampler(gguf_vocab, Constraint(grammar).gbnf())  # the JSON dialect's GBNF parses too (literals)
    call = {"name": tool["name"], "arguments": arguments}
    reply = f'<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>\n{generic.stop_strings[0]}'
    assert lark_accepts(grammar, reply, llama_tokenizer), reply


WEB_BOOK = [{"name": "book", "parameters": {"type": "object", "properties": {
    "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}, "seats": {"type": "integer", "minimum": 1, "maximum": 6}},
    "required": []}}]


@pytest.mark.js
def test_fuzzed_schemas_take_valid_calls_and_refuse_invalid_ones(tiny_gemma_dir):
    """The same fuzzed schemas and valid calls as tests/constrain/test_fuzz.py (where llguidance and
    llama.cpp take them), through web/grammar.js; each call turned invalid must be refused."""
    from js_helpers import require_js, run_node

    from calltune.web_grammar import web_grammar

    require_js()
    cases = []

    @settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(tools=TOOLS, full=st.booleans())
    def collect(tools, full):
        tool = tools[-1]
        grammar = web_grammar(tools)
        arguments = instance(tool["parameters"], full)
        cases.append((grammar, format_call(tool["name"], arguments), True))
        cases.append((grammar, format_call("undeclared_tool", arguments), False))
        cases.append((grammar, format_call(tool["name"], {**arguments, "zz unknown": 1}), False))

    collect()
    cases += [(web_grammar(WEATHER), format_call("get_weather", {"city": "Oslo", "unit": "K"}), False),  # enum
              (web_grammar(WEATHER), format_call("get_weather", {"city": "Oslo", "days": 1.5}), False),  # type
              (web_grammar(WEATHER), format_call("get_weather", {"unit": "C"}), False),  # required
              (web_grammar(WEATHER, "none"), format_call("get_weather", {"city": "Oslo"}), False),
              (web_grammar(WEB_BOOK), format_call("book", {"date": "2026-12-01", "seats": 2}), True),
              (web_grammar(WEB_BOOK), format_call("book", {"date": "tomorrow"}), False),  # pattern
              (web_grammar(WEB_BOOK), format_call("book", {"seats": 9}), False)]  # range
    # the private-use character web/grammar.js takes as <escape>'s symbol, spelled by byte tokens:
    # ordinary text, never the special token (a CPU's logits once led the matcher there)
    added = json.loads((tiny_gemma_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    symbol = chr(0xE000 + [t["content"] for t in added if t["special"]].index("<escape>"))
    spoofed = format_call("get_weather", {"city": "Oslo", "unit": "C"})
    spoofed = spoofed.replace("<escape>C<escape>", f"{symbol}C{symbol}")
    cases.append((web_grammar(WEATHER), spoofed, False))
    job = [{"grammar": g, "text": text + "<start_function_response>"} for g, text, _ in cases]
    job += [{"grammar": web_grammar(WEATHER, choice), "text": "It is sunny.<end_of_turn>"} for choice in ("auto", "required")]
    expected = [valid for _, _, valid in cases] + [True, False]
    results = run_node(Path(__file__).resolve().parents[1] / "export" / "grammar_driver.mjs",
                       stdin=json.dumps({"tokenizer_dir": str(tiny_gemma_dir), "cases": job}))
    assert len(results) == len(job)
    # valid: taken whole; invalid: refused at some token (not merely left unfinished)
    wrong = [(case["text"], r) for case, r, valid in zip(job, results, expected)
             if (r["accepts"] if valid else r["at"] is not None) is not True]
    assert not wrong, wrong[:5]
