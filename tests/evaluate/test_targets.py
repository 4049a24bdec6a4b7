"""The target registry: names, artifact paths, sizes, missing artifacts, and the params it follows."""

import copy

import pytest

from calltune.errors import InputError
from calltune.engines.base import Engine
from calltune.engines.torch_engine import TorchEngine
from calltune.evaluate.runner import size_on_disk_mb
from calltune.evaluate.targets import TARGET_NAMES, get_target, targets_from_params
from calltune.params import load_params, load_schema

from evaluate_helpers import ROOT, models_tree

PARAMS = load_params(ROOT / "params.yaml")


def test_names_are_the_schema_enum_and_the_default_targets_are_all_made_by_default_params():
    schema = load_schema("params.schema.json")["properties"]["evaluate"]["properties"]["targets"]
    assert list(TARGET_NAMES) == schema["items"]["enum"]
    assert PARAMS["evaluate"]["targets"] == targets_from_params(PARAMS)


def test_targets_follow_the_export_and_quantize_params():
    params = copy.deepcopy(PARAMS)
    params["export"].update(onnx=False, gguf=["f32", "bf16"])
    params["quantize"].update(onnx=[], gguf=["q4_K_M"])
    assert targets_from_params(params) == ["base", "tuned", "gguf-f32", "gguf-bf16", "gguf-q4_K_M"]
    params["export"].update(onnx=True, gguf=[])
    params["quantize"].update(onnx=["q4", "fp16"], gguf=[])
    assert targets_from_params(params) == ["base", "tuned", "onnx-fp32", "onnx-q4", "onnx-fp16"]


@pytest.mark.parametrize("name, runtime, path", [
    ("base", "torch", "base"),
    ("tuned", "torch", "fused"),
    ("onnx-fp32", "onnx", "onnx/onnx/model.onnx"),
    ("onnx-fp16", "onnx", "onnx_quantized/onnx/model_fp16.onnx"),
    ("onnx-int8", "onnx", "onnx_quantized/onnx/model_quantized.onnx"),
    ("onnx-q4", "onnx", "onnx_quantized/onnx/model_q4.onnx"),
    ("gguf-f16", "gguf", "gguf/model-f16.gguf"),
    ("gguf-q8_0", "gguf", "gguf_quantized/model-q8_0.gguf"),
    ("gguf-q4_K_M", "gguf", "gguf_quantized/model-q4_K_M.gguf"),
    ("mlx", "mlx", "fused"),
])
def test_artifact_paths(tmp_path, name, runtime, path):
    target = get_target(name, tmp_path)
    assert (target.name, target.runtime, target.model_path) == (name, runtime, tmp_path / path)


def test_unknown_target_is_an_error_listing_the_names():
    with pytest.raises(InputError, match=r"unknown target 'onnx-int4' \(expected one of base, tuned, onnx-fp32"):
        get_target("onnx-int4")


@pytest.mark.parametrize("name, reason", [
    ("tuned", "the fuse stage writes it"),
    ("onnx-fp32", "the export stage writes it when export.onnx is true"),
    ("onnx-q4", "the quantize stage writes it when quantize.onnx includes q4"),
    ("gguf-f16", "the export stage writes it when export.gguf includes f16"),
    ("gguf-q4_K_M", "the quantize stage writes it when quantize.gguf includes q4_K_M"),
])
def test_missing_artifact_names_the_path_and_the_stage_that_makes_it(tmp_path, name, reason):
    target = get_target(name, tmp_path)
    with pytest.raises(InputError) as e:
        target.check_present()
    assert e.value.path == str(target.model_path)
    assert e.value.reason == f"artifact of target {name} not found: {reason}"
    with pytest.raises(InputError):
        target.engine()


def test_onnx_size_counts_the_graph_its_data_and_the_shared_files_not_other_variants(tmp_path):
    layout = tmp_path / "onnx_quantized"
    (layout / "onnx").mkdir(parents=True)
    sizes = {"onnx/model_q4.onnx": 300_000, "onnx/model_q4.onnx_data": 2_000_000, "onnx/model_fp16.onnx": 7_000_000,
             "config.json": 1_000, "tokenizer.json": 40_000}
    for rel, size in sizes.items():
        (layout / rel).write_bytes(b"x" * size)
    q4 = get_target("onnx-q4", tmp_path)
    assert size_on_disk_mb(*q4.size_paths()) == 2.341
    fp16 = get_target("onnx-fp16", tmp_path)
    assert size_on_disk_mb(*fp16.size_paths()) == 7.041


def test_torch_and_gguf_size_is_the_directory_or_the_file(tmp_path, tiny_gemma_dir):
    models_tree(tmp_path, tiny_gemma_dir, names=("fused",))
    assert get_target("tuned", tmp_path).size_paths() == [tmp_path / "fused"]
    assert get_target("gguf-q8_0", tmp_path).size_paths() == [tmp_path / "gguf_quantized" / "model-q8_0.gguf"]


def test_torch_target_engine_runs_the_artifact_under_the_target_name(tmp_path, tiny_gemma_dir, torch_engine):
    models_tree(tmp_path, tiny_gemma_dir, names=("base",))
    engine = get_target("base", tmp_path).engine(threads=1)
    assert isinstance(engine, TorchEngine) and isinstance(engine, Engine) and engine.name == "base"
    prompt = "<bos><start_of_turn>user\nWeather in Paris?<end_of_turn>\n<start_of_turn>model\n"
    assert engine.generate(prompt, 10, ["<end_of_turn>"]) == torch_engine.generate(prompt, 10, ["<end_of_turn>"])


def test_mlx_target_without_mlx_lm_says_how_to_install_it(tmp_path, tiny_gemma_dir, monkeypatch):
    import importlib.util

    models_tree(tmp_path, tiny_gemma_dir, names=("fused",))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlx_lm" else real_find_spec(name, *a))
    with pytest.raises(InputError, match=r"target mlx needs mlx-lm: pip install 'calltune\[mlx\]'"):
        get_target("mlx", tmp_path).engine()
