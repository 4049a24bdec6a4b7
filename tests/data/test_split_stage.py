import json

import pytest
from click.testing import CliRunner

from data_helpers import stage_main, repo_params, write_jsonl

split_stage = stage_main("split")
NAMES = ("train.jsonl", "valid.jsonl", "test.jsonl")
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def canonical(i, calls):
    query = f"request {WORDS[i % 10]} {WORDS[(i // 10) % 10]} number {i}"
    final = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": c, "arguments": {}}}
                                                 for c in calls]} if calls else {"role": "assistant", "content": "no"}
    return {"id": f"ex-{i:05d}", "messages": [{"role": "user", "content": query}, final], "tools": [],
            "meta": {"source": f"e.jsonl:{i}", "calls": calls}}


@pytest.fixture
def dataset(tmp_path):
    return write_jsonl(tmp_path / "dataset.jsonl", [canonical(i, [["a"], ["b"], [], ["a", "a"]][i % 4])
                                                    for i in range(80)])


def run(tmp_path, dataset, out_name="splits", **split):
    params = repo_params(tmp_path, split=split) if split else repo_params(tmp_path)
    out, metrics = tmp_path / out_name, tmp_path / f"{out_name}.json"
    result = CliRunner().invoke(split_stage, ["--params", str(params), "--dataset", str(dataset),
                                              "--out", str(out), "--metrics", str(metrics)])
    return result, out, metrics


def contents(out):
    return [(out / name).read_text() for name in NAMES]


def test_writes_three_splits_and_a_zero_overlap_report(tmp_path, dataset):
    result, out, metrics = run(tmp_path, dataset)
    assert result.exit_code == 0, result.output
    report = json.loads(metrics.read_text())
    assert (report["n_train"], report["n_valid"], report["n_test"], report["overlap"]) == (64, 8, 8, 0)
    lines = [line for text in contents(out) for line in text.splitlines()]
    assert sorted(json.loads(line)["id"] for line in lines) == [f"ex-{i:05d}" for i in range(80)]


def test_same_params_same_bytes_and_split_seed_changes_the_splits(tmp_path, dataset):
    first = run(tmp_path, dataset, "a")[1]
    again = run(tmp_path, dataset, "b")[1]
    assert contents(first) == contents(again)
    reseeded = run(tmp_path, dataset, "c", seed=7)[1]
    assert contents(reseeded)[2] != contents(first)[2]


def test_null_split_seed_falls_back_to_base_seed(tmp_path, dataset):
    explicit = run(tmp_path, dataset, "a", seed=1234)[1]  # base.seed in the repository's params.yaml
    assert contents(run(tmp_path, dataset, "b", seed=None)[1]) == contents(explicit)


def test_bad_dataset_line_exits_2_names_it_and_writes_nothing(tmp_path, dataset):
    lines = dataset.read_text().splitlines()
    broken = json.loads(lines[4])
    del broken["meta"]
    lines[4] = json.dumps(broken)
    dataset.write_text("\n".join(lines) + "\n")
    result, out, metrics = run(tmp_path, dataset)
    assert result.exit_code == 2
    assert f"{dataset}:5: 'meta' is a required property" in result.stderr
    assert not out.exists() and not metrics.exists()


def test_duplicate_ids_are_rejected(tmp_path):
    dataset = write_jsonl(tmp_path / "d.jsonl", [canonical(1, []), canonical(1, [])])
    result, out, _ = run(tmp_path, dataset)
    assert result.exit_code == 2 and "d.jsonl:2 [id]: duplicate id (first at line 1)" in result.stderr
