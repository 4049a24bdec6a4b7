"""Helpers for the evaluate tests: a small test split, a models/ tree of tiny models, params files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "data"), str(TESTS / "export")]
# shared with the data and the GGUF tests
from data_helpers import ROOT, stage_main, repo_params, write_jsonl  # noqa: F401
from gguf_helpers import CALLS, TOOLS, conversation, teach_tool_calls  # noqa: F401

SYSTEM = {"role": "system", "content": "You are a model that can do function calling with the following functions"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
    }, "required": ["location"]},
}}
EMAIL = {"type": "function", "function": {
    "name": "send_email", "description": "Send an email.",
    "parameters": {"type": "object", "properties": {
        "to": {"type": "string", "description": "recipient"},
        "subject": {"type": "string", "description": "subject line"},
    }, "required": ["to", "subject"]},
}}


def example(i: int, question: str, calls: list[dict] | None = None, answer: str = "Sorry, I can't help.") -> dict:
    """One data-contract row; `calls` [{"name", "arguments"}] or None for a no-call example."""
    final = ({"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in calls]}
             if calls else {"role": "assistant", "content": answer})
    return {"id": f"ex-{i:03d}", "messages": [SYSTEM, {"role": "user", "content": question}, final],
            "tools": [WEATHER, EMAIL], "meta": {"source": f"test:{i}", "calls": [c["name"] for c in calls or []]}}


EXAMPLES = [
    example(1, "What's the weather in Tokyo?", [{"name": "get_weather", "arguments": {"location": "Tokyo"}}]),
    example(2, "Email bob about the meeting", [{"name": "send_email", "arguments": {"to": "bob", "subject": "meeting"}}]),
    example(3, "Tell me a joke."),
    example(4, "Weather in Paris in fahrenheit?",
            [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "fahrenheit"}}]),
]


def models_tree(root: Path, model_dir: Path, names=("base", "fused")) -> Path:
    """root/<name>/ copies of one model directory (the tiny model stands in for base and tuned)."""
    for name in names:
        shutil.copytree(model_dir, root / name)
    return root



def taught_examples() -> list[dict]:
    """Data-contract rows of the calls the taught tiny model learned (gguf_helpers.CALLS)."""
    return [{"id": f"taught-{i}", "messages": conversation(query, name, arguments), "tools": TOOLS,
             "meta": {"source": f"gguf_helpers.CALLS:{i}", "calls": [name]}}
            for i, (query, name, arguments) in enumerate(CALLS)]


def assert_generates_like(engine, reference, examples=EXAMPLES, max_new_tokens: int = 16,
                          without_stops: bool = True) -> None:
    """`engine` generates what `reference` generates, text and token count, with the FunctionGemma
    stops (and with none, unless `without_stops` is off) on the prompts of `examples`."""
    from calltune.formats import get_format

    fmt = get_format("functiongemma")
    for ex in examples:
        prompt = fmt.prompt(ex["messages"], ex["tools"])
        for stop in (fmt.stop_strings, []) if without_stops else (fmt.stop_strings,):
            assert engine.generate(prompt, max_new_tokens, stop) == reference.generate(prompt, max_new_tokens, stop)
