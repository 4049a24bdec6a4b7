"""Tiny random-weight models with small real tokenizers, built in-process for fast CPU tests.

- Gemma 3 (FunctionGemma-format): a real Gemma3ForCausalLM, 6 layers (llama.cpp hard-codes Gemma 3's
  5 sliding : 1 full pattern, so fewer layers disagree with it), hidden 64, and a SentencePiece BPE
  tokenizer trained here with Gemma's special tokens at Gemma's ids.
- Llama (SmolLM2/Qwen-style generic format): LlamaForCausalLM with a byte-level BPE tokenizer,
  ChatML special tokens and a tool-aware chat template.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from calltune.tokenizer import FUNCTIONGEMMA_TOKENS

# A small deterministic corpus in the register of tool calling, for training the tokenizers.
_WORDS = """what is the weather in tokyo paris london new york berlin today tomorrow please send an
email to alice bob about the meeting schedule a calendar event remind me to call mom at pm am
search the web for calculate add subtract multiply divide percent of number celsius fahrenheit
create reminder title date time location unit query expression recipient subject body events
declaration call response description parameters properties required type string integer
boolean object array enum value escape function sorry can't help with that using tools I have
""".split()
_SNIPPETS = [
    'call:get_weather{location:<escape>Tokyo, Japan<escape>,unit:<escape>celsius<escape>}',
    '{"name": "get_weather", "arguments": {"location": "Paris", "days": 3}}',
    "declaration:calculator{description:<escape>Evaluate math<escape>,parameters:{type:OBJECT}}",
    "2026-01-16T15:00:00 12.5 100 42 -3 true false null [1, 2, 3]",
    "<tool_call>\n{\"name\": \"search_web\", \"arguments\": {\"query\": \"news\"}}\n</tool_call>",
]


def corpus(lines: int = 400) -> list[str]:
    words = itertools.cycle(_WORDS)
    out = []
    for i in range(lines):
        n = 5 + (i * 7) % 11
        sentence = " ".join(next(words) for _ in range(n))
        out.append(sentence.capitalize() + ("?" if i % 3 else "."))
        out.append(_SNIPPETS[i % len(_SNIPPETS)])
    return out


def gemma_special_tokens(functiongemma: bool = True) -> list[str]:
    """Control tokens for ids 4..106 laid out as in Gemma 3: plain Gemma 3 has <unused40..46> at
    46..52, FunctionGemma its function tokens."""
    names = {4: "<mask>", 5: "[multimodal]", 105: "<start_of_turn>", 106: "<end_of_turn>"}
    if functiongemma:
        names.update(FUNCTIONGEMMA_TOKENS)
    return [names.get(i) or f"<unused{i - 6}>" for i in range(4, 107)]


def train_gemma_spm(out_dir: Path, vocab_size: int = 1024, functiongemma: bool = True) -> Path:
    """Train a SentencePiece BPE model laid out like Gemma 3's (no dummy prefix, byte fallback)."""
    import sentencepiece as spm

    text = out_dir / "corpus.txt"
    text.write_text("\n".join(corpus()), encoding="utf-8")
    prefix = out_dir / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(prefix), model_type="bpe", vocab_size=vocab_size,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", control_symbols=gemma_special_tokens(functiongemma),
        byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, num_threads=1, character_coverage=1.0,
        minloglevel=2,
    )
    text.unlink()
    (out_dir / "tokenizer.vocab").unlink()
    return prefix.with_suffix(".model")


def tiny_gemma_config(vocab_size: int):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
        sliding_window=64, max_position_embeddings=2048, rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0, bos_token_id=2, eos_token_id=1, pad_token_id=0,
        tie_word_embeddings=True,
    )


def build_tiny_gemma(out_dir, seed: int = 0, functiongemma: bool = True) -> Path:
    """A tiny Gemma 3: weights, config, tokenizer, template, generation config. With
    functiongemma=False it is a plain Gemma 3 (no function tokens, no chat template)."""
    from transformers import Gemma3ForCausalLM, GemmaTokenizerFast

    from calltune.model_dir import save_base

    out_dir = Path(out_dir)
    work = out_dir.parent / f".{out_dir.name}-tokenizer"
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = GemmaTokenizerFast(vocab_file=str(train_gemma_spm(work, functiongemma=functiongemma)),
                                   add_bos_token=True,
                                   add_eos_token=False, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>")
    torch.manual_seed(seed)
    config = tiny_gemma_config(len(tokenizer))
    config.sliding_window_pattern = 6  # mlx-lm reads this key (transformers uses layer_types)
    model = Gemma3ForCausalLM(config).eval()
    save_base(model, tokenizer, out_dir, {"source": "tiny-test-model", "seed": seed, "dtype": "float32"})
    return out_dir


# A compact tool-aware ChatML template in the Qwen 2.5 / Hermes style (tools as JSON in the system
# turn, calls as <tool_call>{json}</tool_call>, results as <tool_response>).
TINY_CHATML_TOOLS_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}{% else %}You are a helpful assistant.{% endif %}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{% if message.content %}{{ message.content }}
{% endif %}
{%- for call in message.tool_calls %}
{%- set fn = call.function if call.function is defined else call %}<tool_call>
{"name": "{{ fn.name }}", "arguments": {{ fn.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def build_tiny_llama(out_dir, seed: int = 0, vocab_size: int = 1024) -> Path:
    """A tiny Llama with a byte-level BPE tokenizer and a tool-aware ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from calltune.model_dir import save_base

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>")
    tokenizer.chat_template = TINY_CHATML_TOOLS_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, rope_theta=10_000.0,
    )
    model = LlamaForCausalLM(config).eval()
    save_base(model, tokenizer, Path(out_dir), {"source": "tiny-test-model", "seed": seed, "dtype": "float32"})
    return Path(out_dir)
