"""Smaller variants of an exported onnx/model.onnx, named as Transformers.js looks them up by dtype.

| variant | file                 | Transformers.js dtype | weights                                                   |
|---------|----------------------|-----------------------|-----------------------------------------------------------|
| fp16    | model_fp16.onnx      | fp16                  | stored float16, computed in float32                       |
| int8    | model_quantized.onnx | q8 (its WASM default) | MatMul 8-bit (MatMulNBits, blocks of 32), embedding int8 rows |
| q4      | model_q4.onnx        | q4                    | MatMul 4-bit (MatMulNBits, blocks of 32), embedding int8 rows |

All are weight-only: activations, inputs, outputs and the KV cache stay float32. onnxruntime's
`quantize_dynamic` (int8 activations) is not used: it cut top-1 agreement with fp32 to ~0.6 on these
models (TOOLCHAIN.md). The int8 variant is written as model_quantized.onnx, the file Transformers.js
loads by default in the browser. Measured on Gemma 3 270M (untuned base, 3 test prompts of ~1030
tokens, top-1 agreement with fp32): fp16 873 MB 0.9997, int8 472 MB 0.965, q4 338 MB 0.51 — q4
changes the model's choices; check its tool-call accuracy in the evaluate stage before shipping it.

The variants go to their own directory with the same config and tokenizer files, so each
directory loads in Transformers.js by itself (models/onnx holds fp32).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from calltune.errors import InputError
from calltune.export.onnx import MODEL_FILE, ONNX_SUBDIR, copy_layout_files, layout_config, onnx_bytes
from calltune.io import atomic_path, read_json, write_json

PROTOBUF_LIMIT = 2**31 - 1
BLOCK_SIZE = 32
# onnxruntime's CPU kernel for 8-bit MatMulNBits is fast only with int8 compute (accuracy_level 4:
# activations quantized per block of 32): Gemma 3 270M decodes ~10x faster than at the default
# level (float compute), with the same greedy calls on the test prompts checked. 4-bit is fast as is.
INT8_COMPUTE = 4


class Variant(NamedTuple):
    file: str
    tjs_dtype: str
    bits: int | None  # MatMul weight bits (None: float16)


VARIANTS = {
    "fp16": Variant("model_fp16.onnx", "fp16", None),
    "int8": Variant("model_quantized.onnx", "q8", 8),
    "q4": Variant("model_q4.onnx", "q4", 4),
}
FP32 = Variant(MODEL_FILE, "fp32", None)


def to_fp16(model):
    """Every float32 weight matrix stored as float16, cast back to float32 where it is read.

    Computing in float16 (onnxruntime's float16 converter) cut Gemma 3 270M's top-1 agreement with
    fp32 to 0.90: its residual stream outgrows float16's range. Stored-only float16 halves the file
    and keeps fp32 arithmetic; onnxruntime folds the casts when it loads the model."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    weights = [init for init in graph.initializer if init.data_type == TensorProto.FLOAT and len(init.dims) >= 2]
    casts = []
    for init in weights:
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_to_fp32"))
    for offset, cast in enumerate(casts):
        graph.node.insert(offset, cast)
    return model


def weight_only(model, bits: int):
    """MatMul weights to `bits` (MatMulNBits, blocks of 32) and the embedding table to int8 rows.

    onnxruntime's own 4-bit Gather (GatherBlockQuantized) is not in onnxruntime-web's WASM build, so
    the embedding is quantized with standard ops instead (embedding_to_int8)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=BLOCK_SIZE, is_symmetric=True, bits=bits,
                                          accuracy_level=INT8_COMPUTE if bits == 8 else None,
                                          op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),))
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        quantizer.process()
    finally:
        quiet.setLevel(level)
    model = quantizer.model.model
    embedding_to_int8(model)
    return model


def int8_rows(table):
    """Symmetric per-row int8: (int8 table, float32 scales [rows, 1])."""
    import numpy as np

    scales = np.abs(table).max(axis=1, keepdims=True) / 127.0
    scales[scales == 0] = 1.0
    return np.clip(np.rint(table / scales), -127, 127).astype(np.int8), scales.astype(np.float32)


def embedding_to_int8(model) -> int:
    """Store each float32 table read by a Gather (the token embedding) as int8 rows + one scale per
    row: Gather(int8) -> Cast -> Mul(Gather(scales)). Standard ops only, so every runtime runs it;
    a quarter of the fp32 size. Returns the number of tables converted."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    tables = {init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT and len(init.dims) == 2}
    converted = 0
    for node in list(graph.node):
        if node.op_type != "Gather" or node.input[0] not in tables:
            continue
        table = tables.pop(node.input[0])
        values, scales = int8_rows(numpy_helper.to_array(table))
        graph.initializer.remove(table)
        graph.initializer.extend([numpy_helper.from_array(values, table.name + "_int8"),
                                  numpy_helper.from_array(scales, table.name + "_scale")])
        ids, out, name = node.input[1], node.output[0], node.name or table.name
        extra = [
            helper.make_node("Gather", [table.name + "_scale", ids], [out + "_scale"], name=name + "_scale"),
            helper.make_node("Cast", [out + "_int8"], [out + "_float"], to=TensorProto.FLOAT, name=name + "_cast"),
            helper.make_node("Mul", [out + "_float", out + "_scale"], [out], name=name + "_dequantize"),
        ]
        node.input[0], node.output[0] = table.name + "_int8", out + "_int8"
        at = list(graph.node).index(node) + 1
        for offset, new_node in enumerate(extra):
            graph.node.insert(at + offset, new_node)
        converted += 1
    return converted


def make_variant(name: str, fp32_path: Path):
    import onnx

    model = onnx.load(str(fp32_path))
    return to_fp16(model) if VARIANTS[name].bits is None else weight_only(model, VARIANTS[name].bits)


def save_model(model, path: Path) -> bool:
    """Save as one file when it fits protobuf, else with `<file>_data` beside it. Returns external."""
    import onnx

    external = model.ByteSize() > PROTOBUF_LIMIT
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=path.name + "_data")
    return external


def known_variants(names) -> list[str]:
    """`names` as a list, or an InputError naming the ones that are not ONNX variants."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise InputError(f"unknown ONNX variant(s) {unknown} (expected {', '.join(VARIANTS)})", field="quantize.onnx")
    return list(names)


def quantize_onnx(export_dir, out_dir, variants) -> dict[str, dict]:
    """Write each variant of export_dir/onnx/model.onnx into out_dir (a Transformers.js layout).
    Returns {variant: {"file", "dtype", "bytes", "external_data"}}."""
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    fp32 = export_dir / ONNX_SUBDIR / MODEL_FILE
    if not fp32.is_file():
        raise InputError("exported ONNX model not found (run the export stage)", path=fp32)
    report = {}
    with atomic_path(out_dir) as tmp:
        (tmp / ONNX_SUBDIR).mkdir(parents=True)
        for name in known_variants(variants):
            path = tmp / ONNX_SUBDIR / VARIANTS[name].file
            external = save_model(make_variant(name, fp32), path)
            report[name] = {"file": f"{ONNX_SUBDIR}/{path.name}", "dtype": VARIANTS[name].tjs_dtype,
                            "bytes": onnx_bytes(path), "external_data": external}
        copy_layout_files(export_dir, tmp)
        external = [Path(v["file"]).name for v in report.values() if v["external_data"]]
        write_json(tmp / "config.json", layout_config(read_json(export_dir / "config.json"), external))
    return report

