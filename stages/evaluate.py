"""evaluate stage: run one target (base, tuned, an ONNX or GGUF variant, mlx) greedily on the test split.

Writes metrics/<target>.json (exact match, AST accuracy, tool-name accuracy, parse-valid rate, call
rate, irrelevance accuracy, per-tool accuracy, latency p50/p95, tokens/s, size on disk),
predictions/<target>.jsonl (prompt, raw output, parsed calls, verdict, reason) and the plot data
plots/per_tool/<target>.json and plots/confusion/<target>.json. Targets: calltune/evaluate/targets.py.

evaluate.constrained (default true) decodes under each example's call grammar (calltune.constrain:
only declared tools, their arguments, types and enums, or text); the metrics without it are kept
in the same file under "unconstrained", so `dvc metrics diff` shows what the constraint is worth.

With --test-file (one of evaluate.test_files) it scores your own held-out file instead: examples.jsonl
format, checked like your examples and against the train/valid splits (a shared query is an error);
its metrics and predictions go where --out and --predictions say, no plots.
"""

from pathlib import Path

import click

from calltune.cli import params_option, stage
from calltune.evaluate.plots import write_confusion, write_per_tool
from calltune.evaluate.predictions import write_predictions
from calltune.evaluate.run import describe, run_evaluation
from calltune.evaluate.targets import TARGET_NAMES
from calltune.io import write_json


@click.command(help=__doc__)
@params_option
@click.option("--target", required=True, type=click.Choice(TARGET_NAMES), help="The artifact to evaluate.")
@click.option("--test", default="data/splits/test.jsonl", show_default=True, type=click.Path(dir_okay=False))
@click.option("--models", default="models", show_default=True, type=click.Path(file_okay=False),
              help="Directory holding base/, fused/, onnx/, onnx_quantized/, gguf/, gguf_quantized/.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="[default: metrics/<target>.json]")
@click.option("--predictions", default=None, type=click.Path(dir_okay=False),
              help="[default: predictions/<target>.jsonl]")
@click.option("--plots", default="plots", show_default=True, type=click.Path(file_okay=False),
              help="Writes <plots>/per_tool/<target>.json and <plots>/confusion/<target>.json.")
@click.option("--test-file", default=None,
              help="NAME of one of evaluate.test_files: score that file instead of --test (no plots).")
@click.option("--train", "training", multiple=True, default=("data/splits/train.jsonl", "data/splits/valid.jsonl"),
              show_default=True, type=click.Path(dir_okay=False),
              help="Splits a test file must not share a query with (repeat the option).")
@click.option("--progress/--no-progress", default=False, show_default=True)
@stage
def main(params, target, test, models, out, predictions, plots, test_file, training, progress):
    run = run_evaluation(params, target, models, test=test, test_file=test_file, training=training,
                         progress=progress)
    write_predictions(predictions or f"predictions/{run.name}.jsonl", run.predictions)
    if run.plots:
        write_per_tool(Path(plots) / "per_tool" / f"{target}.json", target, run.metrics)
        write_confusion(Path(plots) / "confusion" / f"{target}.json", run.predictions)
    write_json(out or f"metrics/{run.name}.json", run.metrics)
    click.echo(describe(run.label, run.metrics))


if __name__ == "__main__":
    main()
