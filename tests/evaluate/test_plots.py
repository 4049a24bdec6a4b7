"""Plot data rows, and that `dvc plots show` reads the files written."""

import json
import subprocess
import sys

from calltune.evaluate.metrics import aggregate, judge
from calltune.evaluate.plots import confusion_rows, per_tool_rows, write_confusion, write_per_tool
from calltune.evaluate.predictions import Prediction


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def prediction(calls, expected, parse_error=None):
    return Prediction(id="x", prompt="p", raw_output="r", calls=calls, expected=expected, parse_error=parse_error,
                      latency_s=1.0, n_generated_tokens=3, judgement=judge(calls, parse_error, expected, []))


def pairs(rows):
    return [(r["expected"], r["predicted"]) for r in rows]


def test_confusion_rows_cover_right_wrong_missing_extra_and_broken_output():
    a, b, c = call("a"), call("b"), call("c")
    rows = confusion_rows([
        prediction([a], [a]),                       # right
        prediction([b], [a]),                       # wrong name
        prediction([], [a]),                        # missed call
        prediction([a], []),                        # call where none was expected
        prediction([], []),                         # no call, rightly
        prediction([c, a], [a, b]),                 # parallel: a matched whatever the order, b -> c
        prediction([a, b], [a]),                    # an extra call
        prediction([a], [a, b], parse_error="bad"),  # unparseable: every expected name
        prediction([], [], parse_error="bad"),
    ])
    assert pairs(rows) == [
        ("a", "a"),
        ("a", "b"),
        ("a", "<none>"),
        ("<none>", "a"),
        ("<none>", "<none>"),
        ("a", "a"), ("b", "c"),
        ("a", "a"), ("<none>", "b"),
        ("a", "<unparseable>"), ("b", "<unparseable>"),
        ("<none>", "<unparseable>"),
    ]


def test_per_tool_rows_follow_the_metrics_sorted_by_tool():
    preds = [prediction([call("b")], [call("b")]), prediction([call("b")], [call("a")])]
    rows = per_tool_rows("tuned-torch", aggregate(preds))
    assert rows == [{"target": "tuned-torch", "tool": "a", "accuracy": 0.0},
                    {"target": "tuned-torch", "tool": "b", "accuracy": 1.0}]


def test_dvc_plots_show_renders_the_written_files(tmp_path):
    preds = [prediction([call("a")], [call("a")]), prediction([], [call("a")]), prediction([call("b")], [])]
    write_per_tool(tmp_path / "plots/per_tool/base.json", "base", aggregate(preds))
    write_confusion(tmp_path / "plots/confusion/base.json", preds)
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n"
        "  - plots/per_tool/base.json: {x: accuracy, y: tool, template: bar_horizontal}\n"
        "  - plots/confusion/base.json: {x: predicted, y: expected, template: confusion}\n"
    )
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    shown = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=tmp_path,
                           check=True, capture_output=True, text=True)
    data = json.loads(shown.stdout)["data"]
    bars = data["plots/per_tool/base.json"][0]["content"]
    confusion = data["plots/confusion/base.json"][0]["content"]
    assert [(v["tool"], v["accuracy"]) for v in bars["data"]["values"]] == [("a", 0.5)]
    assert pairs(confusion["data"]["values"]) == [("a", "a"), ("a", "<none>"), ("<none>", "b")]
