import pytest

from calltune.data.examples import Example, to_record
from calltune.data.stats import dataset_stats, load_base_tokenizer
from calltune.errors import InputError
from calltune.formats import get_format
from data_helpers import CALCULATOR, WEATHER, weather

TOOLS = [WEATHER, {"type": "function", "function": CALCULATOR}]


def records():
    examples = [
        Example("Weather in Oslo?", [weather("Oslo")], TOOLS, "e", 1),
        Example("Oslo and Lima?", [weather("Oslo"), weather("Lima")], TOOLS, "e", 2),
        Example("Sing", [], TOOLS, "e", 3),
        Example("2+2?", [{"name": "calculator", "arguments": {"expression": "2 + 2"}}], TOOLS, "e", 4,
                history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                tool_results=[{"result": 4}], answer="4."),
    ]
    return [to_record(e, f"ex-{i}", "No tool fits.") for i, e in enumerate(examples)]


@pytest.fixture(scope="module")
def tokenizer(tiny_gemma_dir):
    return load_base_tokenizer(tiny_gemma_dir)


def test_shares_and_per_tool_counts(tokenizer):
    stats = dataset_stats(records(), get_format("auto", tokenizer=tokenizer), tokenizer)
    assert {k: stats[k] for k in ("n_examples", "n_tools", "no_call_share", "parallel_share", "multi_turn_share",
                                  "tool_result_share", "calls_get_weather", "calls_calculator")} == {
        "n_examples": 4, "n_tools": 2, "no_call_share": 0.25, "parallel_share": 0.25, "multi_turn_share": 0.25,
        "tool_result_share": 0.25, "calls_get_weather": 3, "calls_calculator": 1}
    assert all(isinstance(v, (int, float)) for v in stats.values())


def test_token_lengths_split_the_rendered_text_into_prompt_and_supervised_completion(tokenizer):
    fmt = get_format("functiongemma")
    record = records()[0]
    stats = dataset_stats([record], fmt, tokenizer)

    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    target = "".join(text for text, supervised in fmt.segments(record["messages"], record["tools"]) if supervised)
    assert target.startswith("<start_function_call>call:get_weather")
    assert stats["tokens_total_max"] == count(fmt.render(record["messages"], record["tools"]))
    assert stats["tokens_completion_max"] == count(target)
    assert stats["tokens_prompt_max"] == stats["tokens_total_max"] - stats["tokens_completion_max"] > 0


def test_percentiles_over_several_examples(tokenizer):
    stats = dataset_stats(records(), get_format("functiongemma"), tokenizer)
    for part in ("prompt", "completion", "total"):
        assert stats[f"tokens_{part}_p50"] <= stats[f"tokens_{part}_p95"] <= stats[f"tokens_{part}_max"]
    assert stats["tokens_total_mean"] == pytest.approx(stats["tokens_prompt_mean"] + stats["tokens_completion_mean"])


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="run the base stage first"):
        load_base_tokenizer(tmp_path / "models" / "base")
