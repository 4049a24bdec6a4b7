"""The Node client (npm @huggingface/transformers, offline, local files) runs every exported variant
and produces what the Python onnxruntime engine produces: prompt, text and parsed calls."""

from __future__ import annotations

import json

import pytest
from export_helpers import ROOT
from gguf_helpers import CALLS, TOOLS, conversation
from js_helpers import require_js, run_node

from calltune.export.onnx_quantize import FP32, VARIANTS
from calltune.engines.onnx_engine import OnnxEngine
from calltune.formats import get_format

pytestmark = pytest.mark.js

FMT = get_format("functiongemma")
REQUESTS = CALLS[:3] + [("Remind me to call mom tomorrow at 5 pm", None, None)]
MAX_NEW_TOKENS = 40


@pytest.mark.parametrize("variant", ["fp32", *VARIANTS])
def test_node_generates_what_python_generates(tool_onnx, variant):
    require_js()
    _, onnx_dir, quantized, _ = tool_onnx
    model_dir, info = (onnx_dir, FP32) if variant == "fp32" else (quantized, VARIANTS[variant])
    job = {"model_dir": str(model_dir), "dtype": info.tjs_dtype, "tools": TOOLS, "max_new_tokens": MAX_NEW_TOKENS,
           "requests": [query for query, _, _ in REQUESTS]}
    results = run_node(ROOT / "web" / "node_client.mjs", stdin=json.dumps(job))
    assert len(results) == len(REQUESTS)
    python = OnnxEngine(model_dir, model_file=info.file)
    for (query, name, arguments), result in zip(REQUESTS, results):
        prompt = FMT.prompt(conversation(query), TOOLS)
        assert result["prompt"] == prompt  # the chat template renders the same in Jinja (JS) and Python
        expected = python.generate(prompt, MAX_NEW_TOKENS, FMT.stop_strings)
        assert result["text"] == expected.text
        parsed = FMT.parse(expected.text)
        assert result["calls"] == parsed.calls and (result["error"] is None) == (parsed.error is None)
        if name and variant != "q4":  # the taught calls survive fp16 and 8-bit weights
            assert result["calls"] == [{"name": name, "arguments": arguments}]
    print(f"\nnode {variant}: " + "; ".join(f"{r['calls'] or r['content'][:30]!r} {r['seconds']:.2f}s" for r in results))


# The taught model calls get_weather{location:...}; these tools declare it otherwise, so unconstrained
# it makes calls no schema allows, and the constraint must turn them into valid ones.
RENAMED = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["C", "F"]},
                                                    "days": {"type": "integer"}},
                   "required": ["city", "unit"]}}}]


def same_but_strings(calls: list[dict], others: list[dict]) -> bool:
    """The same tools and keys in the same order, and the same values up to the first string argument
    that is not an enum. From that string on, the engines may have decoded different text, or the
    same text as different tokens, so a later enum or number may differ too (with an AVX2-only
    PyTorch training the fixture, a junk `city` spelled alike by both engines came with `unit` F in
    one and C in the other)."""
    def flat(call_list):  # (name, key, value, is a free string) in generation order
        out = []
        for call in call_list:
            schema = next(t["function"]["parameters"]["properties"] for t in RENAMED
                          if t["function"]["name"] == call["name"])
            out.append((call["name"], None, None, False))
            out += [(call["name"], k, v, isinstance(v, str) and "enum" not in schema.get(k, {}))
                    for k, v in call["arguments"].items()]
        return out
    mine, theirs = flat(calls), flat(others)
    if [item[:2] for item in mine] != [item[:2] for item in theirs]:
        return False
    for a, b in zip(mine, theirs):
        if a[3] or b[3]:
            return True  # a free string: what follows it was decoded after text that may differ
        if a[2] != b[2]:
            return False  # an enum or number differs after the same text
    return True


@pytest.mark.parametrize(("tools", "choice"), [(TOOLS, "auto"), (RENAMED, "auto"), (TOOLS, "send_email")],
                         ids=["auto", "renamed", "named"])
def test_node_constrained_generates_what_python_constrained_generates(tool_onnx, tools, choice):
    """web/grammar.js under `python -m calltune.web_grammar`'s JSON makes exactly the calls the Python
    onnxruntime engine makes under llguidance's mask of the same grammar, and they are valid."""
    from constrain.constrain_helpers import call_errors

    from calltune.constrain import Constraint
    from calltune.web_grammar import web_grammar

    require_js()
    _, onnx_dir, _, _ = tool_onnx
    tool_choice = choice if choice == "auto" else {"type": "function", "function": {"name": choice}}
    queries = [query for query, _, _ in REQUESTS]
    job = {"model_dir": str(onnx_dir), "dtype": "fp32", "tools": tools, "max_new_tokens": MAX_NEW_TOKENS,
           "requests": queries, "grammar": web_grammar(tools, tool_choice)}
    results = run_node(ROOT / "web" / "node_client.mjs", stdin=json.dumps(job))
    python = OnnxEngine(onnx_dir)
    free = [python.generate(FMT.prompt(conversation(q), tools), MAX_NEW_TOKENS, FMT.stop_strings).text for q in queries]
    for query, result, unconstrained in zip(queries, results, free):
        expected = python.generate(FMT.prompt(conversation(query), tools), MAX_NEW_TOKENS, FMT.stop_strings,
                                   constraint=Constraint.for_request(FMT, tools, tool_choice))
        assert result["constrained"], query
        parsed = FMT.parse(result["text"])
        assert parsed.ok and call_errors(parsed.calls, tools) == [], result["text"]
        if tools is RENAMED:
            # Off the taught distribution the model fills strings with junk (`}}}}...`) between
            # tokens whose scores differ by rounding; onnxruntime-node and Python onnxruntime round
            # differently on some CPUs (an AMD EPYC with AVX-512 took `{to` where Python took `}`),
            # so only the strings may differ: the same tools, keys and non-string values
            assert same_but_strings(parsed.calls, FMT.parse(expected.text).calls), (result["text"], expected.text)
        else:
            assert result["text"] == expected.text, (query, unconstrained)
        if choice != "auto":
            assert [c["name"] for c in parsed.calls] == [choice]
    if tools is RENAMED:  # the constraint had something to fix
        assert any(call_errors(FMT.parse(text).calls, tools) or not FMT.parse(text).ok for text in free)
