"""A Markdown table of the headline metrics, one row per target: `python -m calltune.evaluate.table metrics/*.json`.

Files without evaluate metrics (metrics/data.json, split.json, ...) are skipped, so a shell glob works.
Rows follow the target order of calltune.evaluate.targets; "Δ exact" is exact_match minus the tuned
model's, the number a quantized artifact is judged by.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calltune.errors import InputError
from calltune.evaluate.targets import TARGET_NAMES
from calltune.io import read_json

COLUMNS = [  # (metrics key, header, format)
    ("n", "n", "{}"),
    ("exact_match", "exact", "{:.3f}"),
    ("ast_accuracy", "AST", "{:.3f}"),
    ("tool_name_accuracy", "tool name", "{:.3f}"),
    ("parse_valid_rate", "parse-valid", "{:.3f}"),
    ("call_rate", "call rate", "{:.3f}"),
    ("irrelevance_accuracy", "irrelevance", "{:.3f}"),
    ("latency_p50_s", "p50 s", "{:.3f}"),
    ("latency_p95_s", "p95 s", "{:.3f}"),
    ("tokens_per_s", "tok/s", "{:.1f}"),
    ("size_mb", "MB", "{:.1f}"),
]
REFERENCE = "tuned"


def load_target_metrics(paths) -> dict[str, dict]:
    """{target (file stem): metrics} for the files that hold evaluate metrics."""
    found = {}
    for path in map(Path, paths):
        metrics = read_json(path)
        if isinstance(metrics, dict) and "exact_match" in metrics:
            found[path.stem] = metrics
    return found


def _order(name: str) -> tuple:
    return (TARGET_NAMES.index(name), "") if name in TARGET_NAMES else (len(TARGET_NAMES), name)


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def markdown_table(by_target: dict[str, dict]) -> str:
    reference = by_target.get(REFERENCE, {}).get("exact_match")
    headers = ["target"] + [header for _, header, _ in COLUMNS] + (["Δ exact"] if reference is not None else [])
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    for name in sorted(by_target, key=_order):
        m = by_target[name]
        cells = [name] + [_cell(m.get(key), fmt) for key, _, fmt in COLUMNS]
        if reference is not None:
            exact = m.get("exact_match")
            cells.append("n/a" if exact is None else f"{exact - reference:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
def main(paths):
    try:
        by_target = load_target_metrics(paths)
        if not by_target:
            raise InputError(f"none of the {len(paths)} file(s) holds evaluate metrics (exact_match)")
    except InputError as e:
        click.echo(f"error: {e.describe()}", err=True)
        sys.exit(2)
    click.echo(markdown_table(by_target), nl=False)


if __name__ == "__main__":
    main()
