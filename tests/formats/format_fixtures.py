"""Test inputs for the formats tests: the golden cases and tiny real tokenizers with a chat template."""

from __future__ import annotations

import json
from pathlib import Path

GOLDEN_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "functiongemma" / "golden_cases.json"
GOLDEN_CASES = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
GOLDEN_IDS = [case["name"] for case in GOLDEN_CASES]

GEMMA_SPECIALS = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}
FUNCTION_TOKENS = ["<start_of_turn>", "<end_of_turn>", "<start_function_declaration>",
                   "<end_function_declaration>", "<start_function_call>", "<end_function_call>",
                   "<start_function_response>", "<end_function_response>", "<escape>"]

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"},
                                                    "days": {"type": "integer"}},
                   "required": ["city"]}}}


def build_tokenizer(chat_template: str, special_tokens: dict, extra_tokens=()):
    """A real PreTrainedTokenizerFast (WordLevel vocabulary) carrying `chat_template`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", *special_tokens.values(), *extra_tokens, "hello", "world"]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", **special_tokens)
    tokenizer.chat_template = chat_template
    return tokenizer


def supervised_text(segments) -> list[str]:
    return [text for text, supervised in segments if supervised]
