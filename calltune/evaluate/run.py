"""The evaluate stage end to end (stages/evaluate.py is its CLI, which writes what this returns): one
target (targets.py) on the test split or on one of evaluate.test_files, in the pipeline's chat
format, constrained or not (runner.py), and the line the stage prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calltune.errors import InputError
from calltune.evaluate.runner import evaluate_artifact
from calltune.evaluate.targets import get_target


@dataclass(frozen=True)
class Evaluation:
    name: str  # the target, or test_files/<file>/<target>: metrics/<name>.json, predictions/<name>.jsonl
    label: str  # the target (and file) as the printed line names it
    predictions: list
    metrics: dict
    plots: bool  # a run on the test split writes plot data; one on a test file does not


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


def scored_examples(params: dict, test, test_file: str | None = None, training=()) -> list[dict]:
    """The rows a run scores, cut at evaluate.limit: the test split `test`, or the test file named
    `test_file` (one of evaluate.test_files), checked against the `training` splits."""
    from calltune.data.dataset import load_dataset
    from calltune.data.test_files import checked_test_files, load_test_file
    from calltune.data.tools import load_tools

    ep = params["evaluate"]
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
    return examples[: ep["limit"]] if ep["limit"] else examples


def run_evaluation(params: dict, target: str, models, *, test, test_file: str | None = None, training=(),
                   progress: bool = False) -> Evaluation:
    """Evaluate `target` (its artifact under `models`) per params.evaluate on scored_examples(...)."""
    ep = params["evaluate"]
    chosen = get_target(target, models)
    chosen.check_present()
    examples = scored_examples(params, test, test_file, training)
    fmt = chat_format(params["model"]["format"], Path(models) / "base")
    constrained = ep.get("constrained", True)
    preds, metrics = evaluate_artifact(chosen, fmt, examples, max_new_tokens=ep["max_new_tokens"],
                                       threads=ep["threads"], progress=progress, constrained=constrained,
                                       tokenizer=base_tokenizer(Path(models) / "base") if constrained else None)
    if test_file is None:
        return Evaluation(target, target, preds, metrics, plots=True)
    return Evaluation(f"test_files/{test_file}/{target}", f"{target} on {test_file}", preds, metrics, plots=False)


def describe(label: str, m: dict) -> str:
    """The stage's line: the headline metrics of one run."""
    def rate(key):
        return "n/a" if m[key] is None else f"{m[key]:.3f}"

    return (f"{label}: {m['n']} examples, exact {rate('exact_match')}, AST {rate('ast_accuracy')}, "
            f"tool names {rate('tool_name_accuracy')}, parse-valid {rate('parse_valid_rate')}, "
            f"irrelevance {rate('irrelevance_accuracy')}; p50 {m['latency_p50_s']} s, "
            f"{m['tokens_per_s']} tok/s, {m['size_mb']} MB" + _unconstrained(m))


def _unconstrained(m: dict) -> str:
    free = m.get("unconstrained")
    if not free:
        return ""
    return (f" (constrained; without: exact {free['exact_match']}, parse-valid {free['parse_valid_rate']}; "
            f"{m['constrained_regenerated']} of {m['n']} generated again)")
