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
from calltune.data.dataset import load_dataset
from calltune.data.test_files import checked_test_files, load_test_file
from calltune.data.tools import load_tools
from calltune.errors import InputError
from calltune.evaluate.plots import write_confusion, write_per_tool
from calltune.evaluate.predictions import write_predictions
from calltune.evaluate.runner import evaluate_artifact
from calltune.evaluate.targets import TARGET_NAMES, get_target
from calltune.io import write_json


def chat_format(name: str, base_dir: Path):
    """The pipeline's chat format, picked (for auto / generic) from the base model's tokenizer."""
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    if name == "functiongemma":
        return get_format(name)
    if not (base_dir / "tokenizer_config.json").is_file():
        raise InputError("base model tokenizer not found (the base stage writes it); model.format "
                         f"{name} reads it", path=base_dir / "tokenizer_config.json")
    return get_format(name, tokenizer=AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False))


def base_tokenizer(base_dir: Path):
    """The base model's tokenizer (every artifact shares its vocabulary), or None without one: then
    constrained evaluation generates every example again instead of reusing outputs."""
    from transformers import AutoTokenizer

    if not (base_dir / "tokenizer_config.json").is_file():
        return None
    return AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)


def summary(target: str, m: dict) -> str:
    def rate(key):
        return "n/a" if m[key] is None else f"{m[key]:.3f}"

    return (f"{target}: {m['n']} examples, exact {rate('exact_match')}, AST {rate('ast_accuracy')}, "
            f"tool names {rate('tool_name_accuracy')}, parse-valid {rate('parse_valid_rate')}, "
            f"irrelevance {rate('irrelevance_accuracy')}; p50 {m['latency_p50_s']} s, "
            f"{m['tokens_per_s']} tok/s, {m['size_mb']} MB" + _unconstrained(m))


def _unconstrained(m: dict) -> str:
    free = m.get("unconstrained")
    if not free:
        return ""
    return (f" (constrained; without: exact {free['exact_match']}, parse-valid {free['parse_valid_rate']}; "
            f"{m['constrained_regenerated']} of {m['n']} generated again)")


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
    ep = params["evaluate"]
    chosen = get_target(target, models)
    chosen.check_present()
    if test_file is None:
        examples = load_dataset(test)
        if not examples:
            raise InputError("no test examples", path=test)
    else:
        files = checked_test_files(ep["test_files"])
        if test_file not in files:
            raise InputError(f"no test file named {test_file!r} (evaluate.test_files: {', '.join(files) or 'none'})",
                             field="evaluate.test_files")
        examples = load_test_file(files[test_file], test_file, load_tools(params["generate"]["tools"]), list(training),
                                  params["generate"]["no_call_answer"])
    examples = examples[: ep["limit"]] if ep["limit"] else examples
    fmt = chat_format(params["model"]["format"], Path(models) / "base")
    constrained = ep.get("constrained", True)
    preds, metrics = evaluate_artifact(chosen, fmt, examples, max_new_tokens=ep["max_new_tokens"],
                                       threads=ep["threads"], progress=progress, constrained=constrained,
                                       tokenizer=base_tokenizer(Path(models) / "base") if constrained else None)
    name = target if test_file is None else f"test_files/{test_file}/{target}"
    write_predictions(predictions or f"predictions/{name}.jsonl", preds)
    if test_file is None:
        write_per_tool(Path(plots) / "per_tool" / f"{target}.json", target, metrics)
        write_confusion(Path(plots) / "confusion" / f"{target}.json", preds)
    write_json(out or f"metrics/{name}.json", metrics)
    click.echo(summary(target if test_file is None else f"{target} on {test_file}", metrics))


if __name__ == "__main__":
    main()
