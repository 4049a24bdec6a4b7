"""The Markdown table of headline metrics per target."""

import json

from click.testing import CliRunner

from calltune.evaluate.table import load_target_metrics, main, markdown_table


def metrics(exact, tokens_per_s=50.0, size_mb=100.0, irrelevance=1.0):
    return {"n": 20, "exact_match": exact, "ast_accuracy": exact, "tool_name_accuracy": 1.0, "parse_valid_rate": 1.0,
            "call_rate": 0.95, "irrelevance_accuracy": irrelevance, "latency_p50_s": 0.5, "latency_p95_s": 0.75,
            "tokens_per_s": tokens_per_s, "size_mb": size_mb, "per_tool": {"a": exact}}


def write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_table_orders_rows_by_target_and_shows_the_gap_to_tuned():
    table = markdown_table({"onnx-q4": metrics(0.9, 80.25, 150.04), "base": metrics(0.1, irrelevance=None),
                            "tuned": metrics(0.95, 40.0, 1073.5), "custom": metrics(0.5)})
    assert table.splitlines() == [
        ("| target | n | exact | AST | tool name | parse-valid | call rate | irrelevance | p50 s | p95 s | tok/s | MB "
         "| Δ exact |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| base | 20 | 0.100 | 0.100 | 1.000 | 1.000 | 0.950 | n/a | 0.500 | 0.750 | 50.0 | 100.0 | -0.850 |",
        "| tuned | 20 | 0.950 | 0.950 | 1.000 | 1.000 | 0.950 | 1.000 | 0.500 | 0.750 | 40.0 | 1073.5 | +0.000 |",
        "| onnx-q4 | 20 | 0.900 | 0.900 | 1.000 | 1.000 | 0.950 | 1.000 | 0.500 | 0.750 | 80.2 | 150.0 | -0.050 |",
        "| custom | 20 | 0.500 | 0.500 | 1.000 | 1.000 | 0.950 | 1.000 | 0.500 | 0.750 | 50.0 | 100.0 | -0.450 |",
    ]


def test_without_tuned_there_is_no_gap_column():
    lines = markdown_table({"base": metrics(0.25)}).splitlines()
    assert "Δ exact" not in lines[0] and lines[2].startswith("| base | 20 | 0.250 |") and len(lines) == 3


def test_cli_reads_a_glob_of_metrics_files_and_skips_other_metrics(tmp_path):
    paths = [write(tmp_path / "tuned.json", metrics(1.0)), write(tmp_path / "split.json", {"n_train": 3}),
             write(tmp_path / "base.json", metrics(0.0))]
    assert list(load_target_metrics(paths)) == ["tuned", "base"]
    result = CliRunner().invoke(main, paths)
    assert result.exit_code == 0, result.output
    assert [line.split(" | ")[0] for line in result.output.splitlines()[2:]] == ["| base", "| tuned"]


def test_cli_fails_cleanly_on_no_evaluate_metrics_or_broken_json(tmp_path):
    result = CliRunner().invoke(main, [write(tmp_path / "split.json", {"n_train": 3})])
    assert result.exit_code == 2 and "none of the 1 file(s) holds evaluate metrics" in result.output
    (tmp_path / "bad.json").write_text("{oops")
    result = CliRunner().invoke(main, [str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "bad.json:1: invalid JSON" in result.output
