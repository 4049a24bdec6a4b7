"""The model directory every stage hands on (models/base, models/fused): an HF-format folder with
safetensors weights, the tokenizer, the chat template as a file, a greedy generation config and
calltune's provenance record (SOURCE_FILE). base_model writes it from a GGUF, HF directory or hub
id; fuse writes it again with an adapter merged in. Also the names of the files in the adapter
directory the train stage hands to fuse (models/adapter)."""

from __future__ import annotations

from pathlib import Path

import torch

from calltune import __version__
from calltune.errors import InputError
from calltune.io import atomic_path, write_json

SOURCE_FILE = "calltune_source.json"
# models/adapter: a PEFT adapter (torch and mlx backends write this), or mlx-lm's own file (fuse reads both)
PEFT_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
MLX_WEIGHTS = "adapters.safetensors"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # the dtype names params accept


def peft_adapter_files(adapter_dir, field: str | None = None) -> tuple[Path, Path]:
    """(weights, config) of a PEFT adapter directory, or an InputError naming the file that is missing
    (and `field`, the param that named the directory)."""
    adapter_dir = Path(adapter_dir)
    files = adapter_dir / PEFT_WEIGHTS, adapter_dir / ADAPTER_CONFIG
    for need in files:
        if not need.is_file():
            raise InputError("not a PEFT adapter directory: this file is missing", path=need, field=field)
    return files


def functiongemma_template() -> str:
    from calltune.formats.functiongemma import CHAT_TEMPLATE

    return CHAT_TEMPLATE


def generation_config_for(model, tokenizer, functiongemma: bool):
    from transformers import GenerationConfig

    eos = [tokenizer.eos_token_id]
    if functiongemma:
        eos += tokenizer.convert_tokens_to_ids(["<end_of_turn>", "<start_function_response>"])
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, do_sample=False)


def save_base(model, tokenizer, out_dir, provenance: dict) -> None:
    """Write the HF directory atomically: weights, config, tokenizer, template, provenance."""
    functiongemma = "<start_function_call>" in tokenizer.get_vocab()
    if functiongemma:
        tokenizer.chat_template = functiongemma_template()
    model.generation_config = generation_config_for(model, tokenizer, functiongemma)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp, save_jinja_files=False)  # Transformers.js reads it from the config
        if tokenizer.chat_template:
            (tmp / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
        write_json(tmp / SOURCE_FILE, {**provenance, "functiongemma": functiongemma,
                                       "calltune_version": __version__})
