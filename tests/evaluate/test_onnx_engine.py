"""ONNX targets: the tiny Gemma exported and quantized by calltune.export, run through the registry."""

import pytest

from calltune.engines.base import Engine, Generation
from calltune.evaluate.runner import evaluate_artifact
from calltune.evaluate.targets import get_target
from calltune.formats import get_format

from evaluate_helpers import EXAMPLES, assert_generates_like, models_tree

VARIANTS = ("fp16", "int8", "q4")
MAX_NEW_TOKENS = 16


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_gemma_dir):
    from calltune.export.onnx import export_onnx
    from calltune.export.onnx_quantize import quantize_onnx

    root = models_tree(tmp_path_factory.mktemp("onnx-targets") / "models", tiny_gemma_dir, names=("fused",))
    export_onnx(root / "fused", root / "onnx")
    quantize_onnx(root / "onnx", root / "onnx_quantized", VARIANTS)
    return root


def prompts():
    fmt = get_format("functiongemma")
    return fmt, [fmt.prompt(ex["messages"], ex["tools"]) for ex in EXAMPLES]


def test_onnx_fp32_generates_what_pytorch_generates(models, torch_engine):
    engine = get_target("onnx-fp32", models).engine(threads=1)
    assert isinstance(engine, Engine) and engine.name == "onnx-fp32"
    assert_generates_like(engine, torch_engine, max_new_tokens=MAX_NEW_TOKENS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_quantized_variants_run_as_targets_and_are_smaller(models, variant):
    target = get_target(f"onnx-{variant}", models)
    fmt, texts = prompts()
    preds, metrics = evaluate_artifact(target, fmt, EXAMPLES, max_new_tokens=MAX_NEW_TOKENS, threads=1)
    assert [p.id for p in preds] == [ex["id"] for ex in EXAMPLES]
    assert all(1 <= p.n_generated_tokens <= MAX_NEW_TOKENS for p in preds)
    engine = target.engine(threads=1)
    again = engine.generate(texts[0], MAX_NEW_TOKENS, fmt.stop_strings)
    assert isinstance(again, Generation) and (again.text, again.n_tokens) == (preds[0].raw_output,
                                                                               preds[0].n_generated_tokens)
    fp32 = evaluate_artifact(get_target("onnx-fp32", models), fmt, EXAMPLES[:1], max_new_tokens=1, threads=1)[1]
    assert 0 < metrics["size_mb"] < fp32["size_mb"]
