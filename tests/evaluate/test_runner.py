"""The runner: real chat formats and real tiny models; a scripted engine only for exact verdicts."""

import pytest

from calltune.errors import InputError
from calltune.engines.base import Generation
from calltune.engines.torch_engine import TorchEngine
from calltune.evaluate.metrics import aggregate, judge
from calltune.evaluate.predictions import read_predictions, write_predictions
from calltune.evaluate.runner import WARMUP_TOKENS, evaluate_batched, evaluate_target, size_on_disk_mb
from calltune.formats import get_format
from evaluate_helpers import WEATHER as WEATHER_TOOL

DEVELOPER = {"role": "developer",
             "content": "You are a model that can do function calling with the following functions"}


def example(i, question, calls=None, answer=None):
    final = ({"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in calls]}
             if calls else {"role": "assistant", "content": answer})
    return {"id": f"ex-{i}", "messages": [DEVELOPER, {"role": "user", "content": question}, final],
            "tools": [WEATHER_TOOL], "meta": {"source": f"test:{i}", "calls": [c["name"] for c in calls or []]}}


EXAMPLES = [
    example(1, "Weather in Tokyo?", [{"name": "get_weather", "arguments": {"location": "Tokyo, Japan"}}]),
    example(2, "Weather in Paris in fahrenheit?",
            [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "fahrenheit"}}]),
    example(3, "Tell me a joke.", answer="Sorry, I can't help with that."),
    example(4, "Weather in Berlin?", [{"name": "get_weather", "arguments": {"location": "Berlin"}}]),
]
SCRIPT = {
    "Weather in Tokyo?":
        "<start_function_call>call:get_weather{location:<escape>Tokyo, Japan<escape>}<end_function_call>",
    "Weather in Paris in fahrenheit?":
        "<start_function_call>call:get_weather{location:<escape>Paris<escape>,unit:<escape>celsius<escape>}"
        "<end_function_call>",
    "Tell me a joke.": "Sorry, I can't help with that.",
    "Weather in Berlin?": "<start_function_call>call:get_weather{location:<escape>Ber",
}


class ScriptedEngine:
    """Answers each prompt with the scripted output for the question it contains; records requests."""

    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.requests = []

    def generate(self, prompt, max_new_tokens, stop):
        self.requests.append((prompt, max_new_tokens, list(stop)))
        [text] = [out for question, out in self.script.items() if f"{question}<end_of_turn>" in prompt]
        return Generation(text, len(text) // 4)


def test_runner_renders_generates_parses_and_judges_each_example():
    fmt = get_format("functiongemma")
    engine = ScriptedEngine(SCRIPT)
    preds = evaluate_target(engine, fmt, EXAMPLES, max_new_tokens=64)

    prompts = [fmt.prompt(ex["messages"], ex["tools"]) for ex in EXAMPLES]
    assert engine.requests == [(prompts[0], WARMUP_TOKENS, fmt.stop_strings)] + [
        (p, 64, fmt.stop_strings) for p in prompts]
    assert [p.id for p in preds] == ["ex-1", "ex-2", "ex-3", "ex-4"]
    assert [p.prompt for p in preds] == prompts
    assert [p.raw_output for p in preds] == list(SCRIPT.values())
    assert [p.judgement.verdict for p in preds] == ["exact", "wrong", "exact", "unparseable"]
    assert preds[1].judgement.reason == "arg 'unit': expected 'fahrenheit', got 'celsius'"
    assert preds[3].judgement.reason.startswith("parse error: ")
    assert preds[1].calls == [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}]
    assert preds[1].expected == [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "fahrenheit"}}]
    assert preds[2].expected == [] and preds[2].calls == []
    assert [p.n_generated_tokens for p in preds] == [len(t) // 4 for t in SCRIPT.values()]
    assert all(p.latency_s >= 0 for p in preds)

    m = aggregate(preds)
    assert (m["n"], m["exact_match"], m["parse_valid_rate"], m["call_rate"], m["irrelevance_accuracy"]) == (
        4, 0.5, 0.75, 0.6667, 1.0)
    assert m["per_tool"] == {"get_weather": 0.3333}


def test_runner_without_warmup_or_examples():
    engine = ScriptedEngine(SCRIPT)
    assert evaluate_target(engine, get_format("functiongemma"), [], max_new_tokens=8) == []
    evaluate_target(engine, get_format("functiongemma"), EXAMPLES[:1], max_new_tokens=8, warmup=False)
    assert [r[1] for r in engine.requests] == [8]


@pytest.mark.parametrize("model", ["tiny_gemma_dir", "tiny_llama_dir"])
def test_runner_on_a_real_tiny_model(request, tmp_path, model):
    model_dir = request.getfixturevalue(model)
    engine = TorchEngine(model_dir)
    fmt = get_format("auto", tokenizer=engine.tokenizer)
    assert fmt.name == ("functiongemma" if model == "tiny_gemma_dir" else "generic")
    preds = evaluate_target(engine, fmt, EXAMPLES, max_new_tokens=12)

    assert [p.id for p in preds] == [ex["id"] for ex in EXAMPLES]
    for p, ex in zip(preds, EXAMPLES):
        assert p.prompt == fmt.prompt(ex["messages"], ex["tools"])
        assert (p.raw_output, p.n_generated_tokens) == engine.generate(p.prompt, 12, fmt.stop_strings)
        assert 1 <= p.n_generated_tokens <= 12 and p.latency_s > 0
        parsed = fmt.parse(p.raw_output)
        assert (p.calls, p.parse_error) == (parsed.calls, parsed.error)
        assert p.expected == fmt.expected(ex["messages"])
        assert p.judgement == judge(parsed.calls, parsed.error, p.expected, ex["tools"])

    path = tmp_path / "predictions.jsonl"
    write_predictions(path, preds)
    assert read_predictions(path) == preds
    metrics = aggregate(preds, size_mb=size_on_disk_mb(model_dir))
    assert metrics["n"] == 4 and metrics["tokens_per_s"] > 0 and metrics["size_mb"] > 0


def test_batched_predictions_equal_one_at_a_time(taught_gemma_dir):
    """GPU sweeps evaluate in batches: the same outputs, parses and verdicts as evaluate_target."""
    engine = TorchEngine(taught_gemma_dir)
    fmt = get_format("functiongemma")
    one = evaluate_target(engine, fmt, EXAMPLES, max_new_tokens=24, warmup=False)
    batched = evaluate_batched(engine, fmt, EXAMPLES, max_new_tokens=24, batch_size=3)
    assert [p.id for p in batched] == [p.id for p in one]
    for a, b in zip(one, batched):
        assert (a.prompt, a.raw_output, a.n_generated_tokens, a.calls, a.judgement) == \
               (b.prompt, b.raw_output, b.n_generated_tokens, b.calls, b.judgement)
    assert any(p.calls for p in batched)  # the taught model calls, so the verdicts are not all "no call"

def test_size_on_disk_counts_files_and_directories(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 1_500_000)
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"x" * 500_000)
    (tmp_path / "c.gguf").write_bytes(b"x" * 250_000)
    assert size_on_disk_mb(tmp_path / "d") == 2.0
    assert size_on_disk_mb(tmp_path / "d", tmp_path / "c.gguf") == 2.25
    with pytest.raises(InputError, match="artifact not found"):
        size_on_disk_mb(tmp_path / "missing.onnx")


def test_the_runner_scores_a_records_accepted_alternatives():
    """A record's `accept` (from examples.jsonl alternatives) reaches the judge: an accepted
    wording is exact, a value nobody listed is still wrong."""
    paris = dict(EXAMPLES[1], accept=[{"unit": ["fahrenheit", "celsius"]}])  # the script says celsius
    tokyo = example(1, "Weather in Tokyo?", [{"name": "get_weather", "arguments": {"location": "Tokyo"}}])
    listed = dict(tokyo, accept=[{"location": ["Tokyo", "Tokyo, Japan"]}])  # the script says "Tokyo, Japan"
    preds = evaluate_target(ScriptedEngine(SCRIPT), get_format("functiongemma"), [paris, listed, tokyo],
                            max_new_tokens=8, warmup=False)
    assert [p.judgement.verdict for p in preds] == ["exact", "exact", "wrong"]
