"""`get_format("auto")` on the project's tiny test models, read back from disk as the stages read them."""

from __future__ import annotations

from format_fixtures import GOLDEN_CASES

from calltune.formats import FunctionGemmaFormat, GenericFormat, get_format


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_tiny_gemma_is_functiongemma_and_its_saved_template_renders_golden(tiny_gemma_dir):
    tokenizer = load_tokenizer(tiny_gemma_dir)
    fmt = get_format("auto", tokenizer=tokenizer)
    assert isinstance(fmt, FunctionGemmaFormat)
    for case in GOLDEN_CASES:
        text = tokenizer.apply_chat_template(case["messages"], tools=case["tools"], tokenize=False,
                                             add_generation_prompt=case["add_generation_prompt"])
        assert text == case["expected"] == fmt.render(case["messages"], case["tools"], case["add_generation_prompt"])


def test_tiny_llama_is_generic_and_its_calls_round_trip(tiny_llama_dir):
    fmt = get_format("auto", tokenizer=load_tokenizer(tiny_llama_dir))
    assert isinstance(fmt, GenericFormat)
    case = next(c for c in GOLDEN_CASES if c["name"] == "mobile_actions_longest_prompt_and_completion")
    segments = fmt.segments(case["messages"], case["tools"])
    assert "".join(text for text, _ in segments) == fmt.render(case["messages"], case["tools"])
    target = "".join(text for text, supervised in segments if supervised)
    assert fmt.parse(target).calls == fmt.expected(case["messages"])
    assert target.endswith(fmt.stop_strings[0])
