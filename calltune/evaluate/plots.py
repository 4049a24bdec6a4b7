"""DVC plot data files of one target: per-tool accuracy bars and a tool-name confusion matrix.

Each file is a JSON list of flat rows, the shape `dvc plots show` reads. Suggested dvc.yaml:

    plots:
      - plots/per_tool/<target>.json: {x: accuracy, y: tool, template: bar_horizontal}
      - plots/confusion/<target>.json: {x: predicted, y: expected, template: confusion}
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from calltune.evaluate.predictions import Prediction
from calltune.io import write_json

NO_CALL = "<none>"
UNPARSEABLE = "<unparseable>"


def per_tool_rows(target: str, metrics: dict) -> list[dict]:
    """One bar per expected tool: {target, tool, accuracy} from the metrics' per_tool block."""
    return [{"target": target, "tool": tool, "accuracy": accuracy}
            for tool, accuracy in sorted(metrics["per_tool"].items())]


def confusion_rows(predictions: Sequence[Prediction]) -> list[dict]:
    """{expected, predicted} tool-name pairs; a missing side is <none>, broken output <unparseable>."""
    rows = []
    for p in predictions:
        expected = [c["name"] for c in p.expected]
        if p.parse_error is not None:
            rows += [{"expected": name, "predicted": UNPARSEABLE} for name in expected or [NO_CALL]]
        else:
            rows += _paired_names(expected, [c["name"] for c in p.calls])
    return rows


def _paired_names(expected: list[str], predicted: list[str]) -> list[dict]:
    """Pair equal names first (calls match in any order), then the rest in order, then leftovers."""
    if not expected and not predicted:
        return [{"expected": NO_CALL, "predicted": NO_CALL}]
    common = Counter(expected) & Counter(predicted)
    rows = [{"expected": name, "predicted": name} for name in sorted(common.elements())]
    rest_expected = list((Counter(expected) - common).elements())
    rest_predicted = list((Counter(predicted) - common).elements())
    for i in range(max(len(rest_expected), len(rest_predicted))):
        rows.append({
            "expected": rest_expected[i] if i < len(rest_expected) else NO_CALL,
            "predicted": rest_predicted[i] if i < len(rest_predicted) else NO_CALL,
        })
    return rows


def write_per_tool(path, target: str, metrics: dict) -> None:
    write_json(path, per_tool_rows(target, metrics))


def write_confusion(path, predictions: Sequence[Prediction]) -> None:
    write_json(path, confusion_rows(predictions))
