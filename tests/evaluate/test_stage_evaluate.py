"""The evaluate stage CLI on tiny models: the files it writes agree with each other and with the
engine; bad input fails cleanly and writes nothing."""

import json

import pytest
from click.testing import CliRunner

from calltune.evaluate.metrics import aggregate
from calltune.evaluate.plots import confusion_rows, per_tool_rows
from calltune.evaluate.predictions import read_predictions
from calltune.evaluate.runner import size_on_disk_mb
from calltune.formats import get_format

from evaluate_helpers import (CALLS, EMAIL, EXAMPLES, WEATHER, stage_main, models_tree, repo_params, taught_examples,
                              write_jsonl)

evaluate_stage = stage_main("evaluate")
MAX_NEW_TOKENS = 10


@pytest.fixture
def workdir(tmp_path, tiny_gemma_dir):
    models_tree(tmp_path / "models", tiny_gemma_dir)
    write_jsonl(tmp_path / "test.jsonl", EXAMPLES)
    repo_params(tmp_path, evaluate={"max_new_tokens": MAX_NEW_TOKENS, "limit": 3, "threads": 1, "constrained": False})
    return tmp_path


def run(workdir, target, *extra):
    args = ["--params", str(workdir / "params.yaml"), "--target", target, "--test", str(workdir / "test.jsonl"),
            "--models", str(workdir / "models"), "--out", str(workdir / f"metrics/{target}.json"),
            "--predictions", str(workdir / f"predictions/{target}.jsonl"), "--plots", str(workdir / "plots"), *extra]
    return CliRunner().invoke(evaluate_stage, args)


def outputs(workdir) -> list[str]:
    return sorted(p.relative_to(workdir).as_posix() for d in ("metrics", "predictions", "plots")
                  for p in (workdir / d).rglob("*") if p.is_file())


def test_stage_writes_consistent_metrics_predictions_and_plots(workdir, torch_engine):
    result = run(workdir, "tuned")
    assert result.exit_code == 0, result.output
    assert outputs(workdir) == ["metrics/tuned.json", "plots/confusion/tuned.json", "plots/per_tool/tuned.json",
                                "predictions/tuned.jsonl"]

    preds = read_predictions(workdir / "predictions/tuned.jsonl")
    assert [p.id for p in preds] == ["ex-001", "ex-002", "ex-003"]  # evaluate.limit 3
    fmt = get_format("functiongemma")
    for p, ex in zip(preds, EXAMPLES):
        assert p.prompt == fmt.prompt(ex["messages"], ex["tools"])
        assert (p.raw_output, p.n_generated_tokens) == torch_engine.generate(p.prompt, MAX_NEW_TOKENS, fmt.stop_strings)
        assert p.expected == fmt.expected(ex["messages"])

    metrics = json.loads((workdir / "metrics/tuned.json").read_text())
    assert metrics == aggregate(preds, size_mb=round(size_on_disk_mb(workdir / "models/fused"), 4))
    assert metrics["n"] == 3 and metrics["size_mb"] > 0 and metrics["tokens_per_s"] > 0
    assert set(metrics["per_tool"]) == {"get_weather", "send_email"}
    per_tool = json.loads((workdir / "plots/per_tool/tuned.json").read_text())
    assert per_tool == per_tool_rows("tuned", metrics) and len(per_tool) == 2
    confusion = json.loads((workdir / "plots/confusion/tuned.json").read_text())
    assert confusion == confusion_rows(preds)
    assert result.output.startswith("tuned: 3 examples, exact ")


def test_constrained_evaluation_keeps_the_unconstrained_metrics_beside(workdir, torch_engine):
    """evaluate.constrained (the default when the key is missing): the predictions are the
    constrained ones, metrics["unconstrained"] the metrics without the constraint."""
    import yaml

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    del params["evaluate"]["constrained"]
    params["evaluate"]["max_new_tokens"] = 40
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(workdir, "tuned")
    assert result.exit_code == 0, result.output
    preds = read_predictions(workdir / "predictions/tuned.jsonl")
    metrics = json.loads((workdir / "metrics/tuned.json").read_text())
    assert metrics["constrained"] is True and metrics["parse_valid_rate"] == 1.0
    assert 0 <= metrics["constrained_regenerated"] <= 3
    fmt = get_format("functiongemma")
    free = [torch_engine.generate(p.prompt, 40, fmt.stop_strings) for p in preds]
    assert metrics["unconstrained"]["parse_valid_rate"] == sum(fmt.parse(g.text).ok for g in free) / 3
    assert "size_mb" not in metrics["unconstrained"] and "exact_match" in metrics["unconstrained"]
    assert "constrained" in result.output


def test_default_output_paths_follow_the_target_name(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(evaluate_stage, ["--target", "base", "--test", "test.jsonl"])
    assert result.exit_code == 0, result.output
    assert outputs(workdir) == ["metrics/base.json", "plots/confusion/base.json", "plots/per_tool/base.json",
                                "predictions/base.jsonl"]


@pytest.mark.parametrize("target, message", [
    ("onnx-q4", ("models/onnx_quantized/onnx/model_q4.onnx: artifact of target onnx-q4 not found: "
                 "the quantize stage writes it when quantize.onnx includes q4")),
    ("gguf-f16", ("models/gguf/model-f16.gguf: artifact of target gguf-f16 not found: "
                  "the export stage writes it when export.gguf includes f16")),
])
def test_missing_artifact_fails_naming_the_stage_and_writes_nothing(workdir, target, message):
    result = run(workdir, target)
    assert result.exit_code == 2
    assert f"error: {workdir}/{message}" in result.output
    assert outputs(workdir) == []


def test_bad_test_split_names_line_and_field_and_writes_nothing(workdir):
    broken = dict(EXAMPLES[1])
    del broken["tools"]
    write_jsonl(workdir / "test.jsonl", [EXAMPLES[0], broken])
    result = run(workdir, "base")
    assert result.exit_code == 2
    assert "test.jsonl:2" in result.output and "tools" in result.output
    assert outputs(workdir) == []


def test_empty_test_split_is_an_error(workdir):
    (workdir / "test.jsonl").write_text("")
    result = run(workdir, "base")
    assert result.exit_code == 2 and "test.jsonl: no test examples" in result.output
    assert outputs(workdir) == []


def test_auto_format_needs_the_base_tokenizer(workdir):
    import shutil

    shutil.rmtree(workdir / "models/base")
    result = run(workdir, "tuned")
    assert result.exit_code == 2
    assert "models/base/tokenizer_config.json: base model tokenizer not found (the base stage writes it)" in result.output


def test_unknown_target_is_a_usage_error(workdir):
    result = run(workdir, "onnx-int4")
    assert result.exit_code == 2 and "Invalid value for '--target'" in result.output
    assert outputs(workdir) == []


def test_tuned_model_scores_on_the_calls_it_learned_and_the_random_base_does_not(tmp_path, tiny_gemma_dir,
                                                                               taught_gemma_dir):
    models_tree(tmp_path / "models", tiny_gemma_dir, names=("base",))
    models_tree(tmp_path / "models", taught_gemma_dir, names=("fused",))
    write_jsonl(tmp_path / "test.jsonl", taught_examples())
    repo_params(tmp_path, evaluate={"max_new_tokens": 32, "limit": 0, "threads": 1})
    scores = {}
    for target in ("base", "tuned"):
        result = run(tmp_path, target)
        assert result.exit_code == 0, result.output
        scores[target] = json.loads((tmp_path / f"metrics/{target}.json").read_text())
    tuned, base = scores["tuned"], scores["base"]
    assert (tuned["n"], tuned["exact_match"], tuned["ast_accuracy"], tuned["call_rate"]) == (5, 1.0, 1.0, 1.0)
    assert tuned["per_tool"] == {"get_weather": 1.0, "send_email": 1.0}
    assert base["exact_match"] == 0.0 and base["per_tool"] == {"get_weather": 0.0, "send_email": 0.0}
    confusion = json.loads((tmp_path / "plots/confusion/tuned.json").read_text())
    assert sorted((r["expected"], r["predicted"]) for r in confusion) == sorted((name, name) for _, name, _ in CALLS)
    verdicts = [p.judgement.verdict for p in read_predictions(tmp_path / "predictions/tuned.jsonl")]
    assert verdicts == ["exact"] * 5


# ---- held-out test files (evaluate.test_files) -----------------------------------------------------------

def held_out_workdir(workdir, rows, test_files=None):
    import json as _json

    (workdir / "tools.json").write_text(_json.dumps([WEATHER, EMAIL]))
    write_jsonl(workdir / "held.jsonl", rows)
    write_jsonl(workdir / "train.jsonl", EXAMPLES[:2])
    repo_params(workdir, evaluate={"max_new_tokens": MAX_NEW_TOKENS, "limit": 0, "threads": 1, "constrained": False,
                                   "test_files": test_files or [{"name": "held", "path": str(workdir / "held.jsonl")}]},
                generate={"tools": str(workdir / "tools.json")})


def run_file(workdir, target="base", name="held"):
    return run(workdir, target, "--test-file", name, "--train", str(workdir / "train.jsonl"),
               "--out", str(workdir / f"metrics/test_files/{name}/{target}.json"),
               "--predictions", str(workdir / f"predictions/test_files/{name}/{target}.jsonl"))


HELD = [{"query": "Weather in Lima?", "calls": [{"name": "get_weather", "arguments": {"location": "Lima"},
                                                 "accept": {"unit": ["", "celsius"]}}]},
        {"query": "Sing me a song", "calls": []}]


def test_a_test_file_is_scored_into_its_own_metrics_and_predictions(workdir):
    held_out_workdir(workdir, HELD)
    result = run_file(workdir)
    assert result.exit_code == 0, result.output
    assert outputs(workdir) == ["metrics/test_files/held/base.json", "predictions/test_files/held/base.jsonl"]
    preds = read_predictions(workdir / "predictions/test_files/held/base.jsonl")
    assert [p.id for p in preds] == ["held:1", "held:2"]
    assert preds[0].expected == [{"name": "get_weather", "arguments": {"location": "Lima"}}]
    metrics = json.loads((workdir / "metrics/test_files/held/base.json").read_text())
    assert metrics == aggregate(preds, size_mb=metrics["size_mb"]) and metrics["n"] == 2
    assert result.output.startswith("base on held: 2 examples")


@pytest.mark.parametrize("rows, expected", [
    ([HELD[0], {"query": "q", "calls": [{"name": "get_weather", "arguments": {"location": "Oslo"},
                                        "accept": {"unit": ["kelvin"]}}]}],
     "held.jsonl:2 [calls[0].accept.unit[0]]: 'kelvin' is not one of"),
    ([{"query": "What's the weather in TOKYO", "calls": []}],
     "held.jsonl:1 [query]: the same query is in the training data:"),
    ([{"query": "Weather?", "calls": [{"name": "get_weather", "arguments": {}}]}],
     "held.jsonl:1 [calls[0].arguments]: 'location' is a required property"),
])
def test_a_bad_test_file_exits_2_naming_the_place_and_writes_nothing(workdir, rows, expected):
    held_out_workdir(workdir, rows)
    result = run_file(workdir)
    assert result.exit_code == 2 and expected in result.output
    assert outputs(workdir) == []


def test_an_unknown_test_file_name_is_an_error(workdir):
    held_out_workdir(workdir, HELD)
    result = run_file(workdir, name="other")
    assert result.exit_code == 2 and "no test file named 'other' (evaluate.test_files: held)" in result.output
