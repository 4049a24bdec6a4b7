"""Constrained decoding in every engine that runs here (PyTorch, onnxruntime, llama.cpp in-process,
MLX on mlx[cpu] when installed):
random tiny models make only valid calls or text under the constraint, and a model taught a call
that the request's tools do not allow makes an allowed one instead."""

from __future__ import annotations

import pytest
from constrain_helpers import TOOLS, call_errors

from calltune.constrain import Constraint
from calltune.evaluate.metrics import aggregate
from calltune.evaluate.runner import evaluate_target
from calltune.formats import get_format

FG = get_format("functiongemma")
MAX_NEW_TOKENS = 64
QUERIES = ["What is the weather in Tokyo?", "Plan a meeting with ann tomorrow at 9", "ping", "Tell me a joke"]


def examples(tools=TOOLS):
    return [{"id": f"q{i}", "messages": [{"role": "system", "content": "You are a model that can do function "
                                                                       "calling with the following functions"},
                                         {"role": "user", "content": q}], "tools": tools}
            for i, q in enumerate(QUERIES)]


@pytest.fixture(scope="module")
def onnx_dir(tiny_gemma_dir, tmp_path_factory):
    from calltune.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("constrain-onnx")
    export_onnx(tiny_gemma_dir, out)
    return out


def engine(kind, tiny_gemma_dir, request):
    if kind == "torch":
        from calltune.engines.torch_engine import TorchEngine

        return TorchEngine(tiny_gemma_dir)
    if kind == "onnx":
        from calltune.engines.onnx_engine import OnnxEngine

        return OnnxEngine(request.getfixturevalue("onnx_dir"), threads=1)
    if kind == "mlx":
        pytest.importorskip("mlx_lm", reason="mlx-lm not installed (pip install calltune[mlx])")
        from calltune.engines.mlx_engine import MlxEngine

        return MlxEngine(tiny_gemma_dir)
    from calltune.engines.llama_cpp import LlamaCppEngine

    return LlamaCppEngine(request.getfixturevalue("tiny_gguf"), threads=1)


def assert_all_valid(predictions, tools):
    assert aggregate(predictions)["parse_valid_rate"] == 1.0, [p.raw_output for p in predictions]
    for p in predictions:
        assert call_errors(p.calls, tools) == [], p.raw_output


@pytest.mark.parametrize("kind", ["torch", "onnx", "llama.cpp", "mlx"])
def test_random_models_make_only_valid_calls_under_the_constraint(kind, tiny_gemma_dir, request):
    chosen = engine(kind, tiny_gemma_dir, request)
    free = evaluate_target(chosen, FG, examples(), max_new_tokens=MAX_NEW_TOKENS, warmup=False)
    assert aggregate(free)["call_rate"] is None or not any(p.calls for p in free)  # random: no calls unaided
    constrained = evaluate_target(chosen, FG, examples(), max_new_tokens=MAX_NEW_TOKENS, warmup=False,
                                  constrained=True)
    assert_all_valid(constrained, TOOLS)
    for choice in ("required", {"type": "function", "function": {"name": "create_event"}}):
        for example in examples():
            prompt = FG.prompt(example["messages"], TOOLS)
            text = chosen.generate(prompt, MAX_NEW_TOKENS, FG.stop_strings,
                                   constraint=Constraint.for_request(FG, TOOLS, choice)).text
            parsed = FG.parse(text)
            assert parsed.ok and parsed.calls and call_errors(parsed.calls, TOOLS) == [], text
            if isinstance(choice, dict):
                assert {c["name"] for c in parsed.calls} == {"create_event"}


def test_the_json_format_is_constrained_too(tiny_llama_dir):
    from calltune.engines.torch_engine import TorchEngine

    chosen = TorchEngine(tiny_llama_dir)
    fmt = get_format("generic", tokenizer=chosen.tokenizer)
    predictions = evaluate_target(chosen, fmt, examples(), max_new_tokens=MAX_NEW_TOKENS, warmup=False,
                                  constrained=True)
    assert_all_valid(predictions, TOOLS)
    text = chosen.generate(fmt.prompt(examples()[0]["messages"], TOOLS), MAX_NEW_TOKENS, fmt.stop_strings,
                           constraint=Constraint.for_request(fmt, TOOLS, "required")).text
    parsed = fmt.parse(text)
    assert parsed.ok and parsed.calls and call_errors(parsed.calls, TOOLS) == [], text


# The taught model calls get_weather{location:...}; these tools declare get_weather differently.
RENAMED = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city", "unit"]}}}]


@pytest.mark.parametrize("kind", ["torch", "llama.cpp"])
def test_a_model_taught_an_invalid_call_makes_a_valid_one(kind, taught_gemma_dir, tmp_path_factory):
    if kind == "torch":
        from calltune.engines.torch_engine import TorchEngine

        chosen = TorchEngine(taught_gemma_dir)
    else:
        from calltune.export.gguf import export_gguf
        from calltune.engines.llama_cpp import LlamaCppEngine

        out = tmp_path_factory.mktemp("taught-gguf")
        export_gguf(taught_gemma_dir, out, ["f32"])
        chosen = LlamaCppEngine(next(out.glob("*.gguf")), threads=1)
    prompt = FG.prompt(examples(RENAMED)[0]["messages"], RENAMED)
    free = FG.parse(chosen.generate(prompt, MAX_NEW_TOKENS, FG.stop_strings).text)
    assert free.calls and call_errors(free.calls, RENAMED), "the taught model should make its invalid call"
    text = chosen.generate(prompt, MAX_NEW_TOKENS, FG.stop_strings,
                           constraint=Constraint.for_request(FG, RENAMED)).text
    parsed = FG.parse(text)
    assert parsed.ok and [c["name"] for c in parsed.calls] == ["get_weather"], text
    assert call_errors(parsed.calls, RENAMED) == [], text
