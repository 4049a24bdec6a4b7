"""ONNX variants: each loads and runs in onnxruntime, has the intended weight format, and stays close
to fp32 (top-1 and greedy tool-call agreement)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from export_helpers import stage_main, repo_params

from calltune.errors import InputError
from calltune.export import onnx_quantize
from calltune.export.onnx import MODEL_FILE
from calltune.export.onnx_quantize import VARIANTS, embedding_to_int8, quantize_onnx
from calltune.engines.onnx_engine import OnnxCausalLM
from calltune.export.parity import check_variants

IDS = list(range(2, 120))


def ops(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def nbits(path) -> set[int]:
    return {attr.i for node in onnx.load(str(path)).graph.node if node.op_type == "MatMulNBits"
            for attr in node.attribute if attr.name == "bits"}


def test_each_variant_runs_in_onnxruntime_and_is_smaller(tool_onnx):
    _, onnx_dir, quantized, report = tool_onnx
    fp32 = OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE).logits(IDS)
    sizes = {"fp32": (onnx_dir / "onnx" / MODEL_FILE).stat().st_size}
    for name, variant in VARIANTS.items():
        logits = OnnxCausalLM(quantized / "onnx" / variant.file).logits(IDS)
        assert logits.shape == fp32.shape and np.isfinite(logits).all()
        sizes[name] = report[name]["bytes"]
        assert sizes[name] == (quantized / "onnx" / variant.file).stat().st_size
        assert report[name]["file"] == f"onnx/{variant.file}" and not report[name]["external_data"]
    print("\nsizes (bytes):", sizes)
    assert sizes["fp32"] > sizes["fp16"] > sizes["int8"] > sizes["q4"]


def test_weight_formats(tool_onnx):
    _, _, quantized, _ = tool_onnx
    fp16 = onnx.load(str(quantized / "onnx" / VARIANTS["fp16"].file))
    float_inits = Counter(init.data_type for init in fp16.graph.initializer if len(init.dims) == 2)
    assert float_inits[onnx.TensorProto.FLOAT16] > 0 and float_inits[onnx.TensorProto.FLOAT] == 0
    io_types = {v.type.tensor_type.elem_type for v in [*fp16.graph.input, *fp16.graph.output]}
    assert io_types == {onnx.TensorProto.INT64, onnx.TensorProto.FLOAT}  # callers feed and read float32
    assert ops(quantized / "onnx" / VARIANTS["fp16"].file)["Cast"] >= float_inits[onnx.TensorProto.FLOAT16]

    for name, bits in (("int8", 8), ("q4", 4)):
        path = quantized / "onnx" / VARIANTS[name].file
        assert nbits(path) == {bits} and ops(path)["MatMulNBits"] == 6 * 7 + 1  # 7 linears per layer + LM head
        assert ops(path)["GatherBlockQuantized"] == 0  # not in onnxruntime-web's WASM build
        assert int8_gathers(path) == 1  # the token embedding


def int8_gathers(path) -> int:
    model = onnx.load(str(path))
    int8 = {init.name for init in model.graph.initializer if init.data_type == onnx.TensorProto.INT8}
    return sum(node.op_type == "Gather" and node.input[0] in int8 for node in model.graph.node)


def test_variants_agree_with_fp32(tool_onnx, check_examples):
    _, onnx_dir, quantized, _ = tool_onnx
    result = check_variants(onnx_dir, quantized, list(VARIANTS), check_examples, format_name="functiongemma",
                            limit=5, max_new_tokens=40)
    print("\n" + "\n".join(f"{name}: top-1 {r['top1_agreement']:.3f}, same calls {r['same_calls']:.2f}, "
                           f"max |delta logits| {r['max_abs_diff']:.3f}" for name, r in result.items()))
    assert result["fp16"]["top1_agreement"] > 0.99 and result["fp16"]["same_calls"] == 1.0
    assert result["int8"]["top1_agreement"] > 0.97 and result["int8"]["same_calls"] == 1.0
    assert result["q4"]["top1_agreement"] > 0.8
    assert result["fp16"]["max_abs_diff"] < result["int8"]["max_abs_diff"] < result["q4"]["max_abs_diff"]


def test_quantized_dir_is_a_transformers_js_layout(tool_onnx):
    _, onnx_dir, quantized, _ = tool_onnx
    assert sorted(p.name for p in (quantized / "onnx").iterdir()) == sorted(v.file for v in VARIANTS.values())
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (quantized / name).read_bytes() == (onnx_dir / name).read_bytes()
    assert json.loads((quantized / "config.json").read_text()) == json.loads((onnx_dir / "config.json").read_text())


def test_embedding_to_int8_keeps_values(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["out"], name="embed")], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3, 8])],
        [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    assert embedding_to_int8(model) == 1
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    import onnxruntime as ort

    ids = np.array([0, 7, 49])
    (out,) = ort.InferenceSession(str(path)).run(None, {"ids": ids})
    half_step = np.abs(table[ids]).max(axis=1, keepdims=True) / 127 / 2
    assert out.dtype == np.float32 and (np.abs(out - table[ids]) <= half_step * 1.001).all()


def test_large_variant_is_saved_with_external_data(tool_onnx, tmp_path, monkeypatch):
    _, onnx_dir, _, _ = tool_onnx
    monkeypatch.setattr(onnx_quantize, "PROTOBUF_LIMIT", 100_000)  # pretend the tiny model is huge
    report = quantize_onnx(onnx_dir, tmp_path / "q", ["fp16"])
    assert report["fp16"]["external_data"]
    assert (tmp_path / "q" / "onnx" / "model_fp16.onnx_data").is_file()
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["transformers.js_config"]["use_external_data_format"] == {"model_fp16.onnx": True}
    assert np.isfinite(OnnxCausalLM(tmp_path / "q" / "onnx" / "model_fp16.onnx").logits(IDS)).all()


def test_unknown_variant_and_missing_model(tool_onnx, tmp_path):
    _, onnx_dir, _, _ = tool_onnx
    with pytest.raises(InputError) as error:
        quantize_onnx(onnx_dir, tmp_path / "q", ["fp16", "int3"])
    assert error.value.field == "quantize.onnx" and "int3" in str(error.value)
    with pytest.raises(InputError, match="run the export stage"):
        quantize_onnx(tmp_path / "nowhere", tmp_path / "q", ["fp16"])
    assert not (tmp_path / "q").exists()


def test_quantize_stage_writes_variants_and_metrics(tool_onnx, check_examples, tmp_path):
    _, onnx_dir, _, _ = tool_onnx
    params = repo_params(tmp_path / "params.yaml", quantize={"onnx": ["int8", "q4"], "gguf": [],
                                                              "check_examples": 2, "check_max_new_tokens": 16})
    args = ["--params", str(params), "--onnx-dir", str(onnx_dir), "--out", str(tmp_path / "q"),
            "--examples", str(check_examples), "--metrics", str(tmp_path / "metrics.json")]
    result = CliRunner().invoke(stage_main("quantize"), args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())["onnx"]
    assert set(metrics) == {"fp32_bytes", "int8", "q4"}
    assert metrics["int8"]["positions"] > 0 and 0 <= metrics["q4"]["top1_agreement"] <= 1
    assert "model_quantized.onnx" in result.output and "model_q4.onnx" in result.output
