import json

import pytest
from click.testing import CliRunner

from calltune.data.dataset import load_dataset
from data_helpers import stage_main, repo_params, tools_file, weather, write_jsonl

generate_stage = stage_main("generate")


@pytest.fixture
def project(tmp_path):
    rows = [{"query": "Weather in Oslo?", "calls": [weather("Oslo")]}, {"query": "Sing", "calls": []},
            {"query": "Lima and Pune?", "calls": [weather("Lima"), weather("Pune")]}]
    params = repo_params(tmp_path, generate={
        "tools": str(tools_file(tmp_path)), "examples": str(write_jsonl(tmp_path / "examples.jsonl", rows)),
        "templates": "", "imports": [], "augment": {"enabled": False, "per_example": 0, "target_per_tool": 0},
        "no_call_share": 0}, model={"format": "auto"})
    return tmp_path, params


def run(tmp_path, params, base_model):
    out, metrics = tmp_path / "out" / "dataset.jsonl", tmp_path / "metrics" / "data.json"
    result = CliRunner().invoke(generate_stage, ["--params", str(params), "--base-model", str(base_model),
                                                 "--out", str(out), "--metrics", str(metrics)])
    return result, out, metrics


def test_writes_the_dataset_and_its_metrics(project, tiny_gemma_dir):
    tmp_path, params = project
    result, out, metrics = run(tmp_path, params, tiny_gemma_dir)
    assert result.exit_code == 0, result.output
    assert [r["meta"]["calls"] for r in load_dataset(out)] == [["get_weather"], [], ["get_weather", "get_weather"]]
    stats = json.loads(metrics.read_text())
    assert (stats["n_examples"], stats["no_call_share"], stats["parallel_share"]) == (3, 0.3333, 0.3333)
    assert stats["duplicate_queries"] == 0 and stats["from_examples"] == 3 and stats["tokens_total_max"] > 0
    assert "3 examples" in result.stdout


def test_bad_input_exits_2_names_the_place_and_writes_nothing(project, tiny_gemma_dir):
    tmp_path, params = project
    write_jsonl(tmp_path / "examples.jsonl", [{"query": "ok", "calls": []},
                                             {"query": "Oslo in kelvin", "calls": [weather("Oslo", unit="kelvin")]}])
    result, out, metrics = run(tmp_path, params, tiny_gemma_dir)
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'examples.jsonl'}:2 [calls[0].arguments.unit]: 'kelvin' is not one of" in result.stderr
    assert not out.parent.exists() and not metrics.parent.exists()  # not even a temp file or a directory


def test_missing_base_model_exits_2_before_writing(project):
    tmp_path, params = project
    result, out, metrics = run(tmp_path, params, tmp_path / "models" / "base")
    assert result.exit_code == 2 and "run the base stage first" in result.stderr
    assert not out.parent.exists() and not metrics.parent.exists()


def test_duplicates_are_warned_about_on_stderr(project, tiny_gemma_dir):
    tmp_path, params = project
    write_jsonl(tmp_path / "examples.jsonl", [{"query": "Sing", "calls": []}, {"query": "sing!", "calls": []}])
    result, out, metrics = run(tmp_path, params, tiny_gemma_dir)
    assert result.exit_code == 0
    assert f"warning: {tmp_path / 'examples.jsonl'}:2 [query]: duplicate query" in result.stderr
    assert json.loads(metrics.read_text())["duplicate_queries"] == 1


def test_default_params_add_augmented_and_bank_rows_and_count_them(project, tiny_gemma_dir):
    tmp_path, _ = project
    rows = [{"query": f"What's the weather in {city}?", "calls": [weather(city)]} for city in ("Oslo", "Lima", "Pune")]
    params = repo_params(tmp_path, generate={
        "tools": str(tools_file(tmp_path)), "examples": str(write_jsonl(tmp_path / "examples.jsonl", rows)),
        "templates": "", "imports": []}, model={"format": "auto"})  # augment and no_call_share as shipped
    result, out, metrics = run(tmp_path, params, tiny_gemma_dir)
    assert result.exit_code == 0, result.output
    stats, records = json.loads(metrics.read_text()), load_dataset(out)
    assert stats["from_examples"] == 3 and stats["from_augmented"] > 3 and stats["from_no_call_bank"] > 0
    assert stats["n_examples"] == 3 + stats["from_augmented"] + stats["from_no_call_bank"] == len(records)
    assert stats["no_call_share"] >= 0.15 and stats["augment_slots_text"] == 3
    assert stats["no_call_bank_filtered"] + stats["no_call_bank_available"] > 300
    assert all(r["meta"]["origin"] in {"ex-00001", "ex-00002", "ex-00003"} for r in records[3:3 + stats["from_augmented"]])


def test_bad_alternatives_exit_2_and_write_nothing(project, tiny_gemma_dir):
    tmp_path, params = project
    write_jsonl(tmp_path / "examples.jsonl", [{"query": "Oslo", "calls": [
        {**weather("Oslo"), "accept": {"unit": ["celsius", "kelvin"]}}]}])
    result, out, metrics = run(tmp_path, params, tiny_gemma_dir)
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'examples.jsonl'}:1 [calls[0].accept.unit[1]]: 'kelvin' is not one of" in result.stderr
    assert not out.parent.exists() and not metrics.parent.exists()
