"""GGUF targets through the registry and the stage: llama.cpp runs what calltune.export.gguf wrote."""

import json

import pytest
from click.testing import CliRunner

from calltune.engines.base import Engine
from calltune.evaluate.predictions import read_predictions
from calltune.evaluate.targets import get_target

from evaluate_helpers import assert_generates_like, stage_main, models_tree, repo_params, taught_examples, write_jsonl

evaluate_stage = stage_main("evaluate")
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def taught_workdir(tmp_path_factory, tiny_gemma_dir, taught_gemma_dir):
    """A workdir with base (random), fused (taught) and the taught model's f32 and q8_0 GGUFs."""
    from calltune.export.gguf import export_gguf, quantize_gguf

    work = tmp_path_factory.mktemp("gguf-taught")
    models_tree(work / "models", tiny_gemma_dir, names=("base",))
    models_tree(work / "models", taught_gemma_dir, names=("fused",))
    export_gguf(work / "models/fused", work / "models/gguf", ["f32"])
    quantize_gguf(work / "models/gguf", work / "models/gguf_quantized", ["q8_0"], threads=1)
    write_jsonl(work / "test.jsonl", taught_examples())
    repo_params(work, evaluate={"max_new_tokens": 32, "limit": 0, "threads": 1})
    return work


def test_f32_gguf_target_generates_exactly_what_pytorch_generates(taught_workdir):
    """On the taught model, whose outputs are well-formed text. (A random model emits stray UTF-8
    bytes, which transformers and llama.cpp render as different replacement characters.) Only with
    the format's stops: without them PyTorch also ends at every id of generation_config's
    eos_token_id, llama.cpp only at its end-of-generation tokens."""
    from calltune.engines.torch_engine import TorchEngine

    engine = get_target("gguf-f32", taught_workdir / "models").engine(threads=1)
    assert isinstance(engine, Engine) and engine.name == "gguf-f32"
    reference = TorchEngine(taught_workdir / "models/fused", threads=1)
    assert_generates_like(engine, reference, taught_examples(), MAX_NEW_TOKENS, without_stops=False)


def run(work, target):
    return CliRunner().invoke(evaluate_stage, [
        "--params", str(work / "params.yaml"), "--target", target, "--test", str(work / "test.jsonl"),
        "--models", str(work / "models"), "--out", str(work / f"metrics/{target}.json"),
        "--predictions", str(work / f"predictions/{target}.jsonl"), "--plots", str(work / "plots")])


@pytest.mark.parametrize("target", ["gguf-f32", "gguf-q8_0"])
def test_stage_on_gguf_targets_matches_the_tuned_model(taught_workdir, target):
    for name in ("tuned", target):
        result = run(taught_workdir, name)
        assert result.exit_code == 0, result.output
    tuned = read_predictions(taught_workdir / "predictions/tuned.jsonl")
    gguf = read_predictions(taught_workdir / f"predictions/{target}.jsonl")
    if target == "gguf-f32":  # float32 in both runtimes: the same text, token for token
        assert [(p.raw_output, p.n_generated_tokens) for p in gguf] == [
            (p.raw_output, p.n_generated_tokens) for p in tuned]
    assert [p.calls for p in gguf] == [p.calls for p in tuned]
    metrics = json.loads((taught_workdir / f"metrics/{target}.json").read_text())
    assert (metrics["n"], metrics["exact_match"]) == (5, 1.0)
    gguf_file = get_target(target, taught_workdir / "models").model_path
    assert metrics["size_mb"] == round(gguf_file.stat().st_size / 1e6, 4)
