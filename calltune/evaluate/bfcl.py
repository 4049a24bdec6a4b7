"""BFCL held-out scoring: run a model on BFCL v4's non-live categories and score every output twice,
with calltune's AST metric and with bfcl-eval's own checker, reporting both and how often they agree.

    python -m calltune.evaluate.bfcl MODEL_DIR --out metrics.json --predictions preds.jsonl \
        [--categories simple_python,irrelevance] [--limit N] [--batch-size 32] [--device auto]
    python -m calltune.evaluate.bfcl MODEL_DIR --out metrics.json --predictions preds.jsonl --rescore
        # judge the raw outputs in preds.jsonl again (after a checker change): no generation

Questions, functions and possible answers come from the PyPI package bfcl-eval (installed without
its dependencies), read by calltune's BFCL importer; each prompt is rendered in the model's chat
format (calltune.formats) and generated greedily in batches. Scoring, on the same parsed calls:
- calltune: metrics.judge with BFCL's possible answers as `accept` (verdict: AST-correct);
- bfcl: bfcl_eval's ast_checker on the calls under BFCL's own function names; for irrelevance,
  correct iff no call was produced, as BFCL scores it.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import click
from tqdm import tqdm

from calltune.data.examples import to_record
from calltune.data.importers import bfcl as importer
from calltune.errors import InputError
from calltune.evaluate.metrics import DECIMALS, Judgement, judge
from calltune.formats.messages import last_user_index
from calltune.foundation.bfcl_data import HELD_OUT_CATEGORIES, category_files, data_dir  # noqa: F401 (data_dir: the package's data)
from calltune.io import write_json, write_jsonl

CATEGORIES = HELD_OUT_CATEGORIES
BATCH_SIZE = 32  # prompts per generate call; larger is faster on a GPU until memory runs out
# Generated tokens per prompt. The target answers take 46 Gemma tokens on average in FunctionGemma
# syntax; all but 3 parallel items (217-253 tokens) fit in 192.
MAX_NEW_TOKENS = 192
# The model name handed to bfcl's checker. The checker uses it for one thing: a registry lookup of
# underscore_to_dot (whether dotted function names were written with "_"). FunctionGemma's entry has
# False, which is right here: the calls reach the checker under BFCL's own, dotted, names.
CHECKER_MODEL = "google_functiongemma-270m-it-FC"  # bfcl's escaped form of google/functiongemma-270m-it-FC
REGISTRY_MODULE = "bfcl_eval.constants.model_config"
CHECKER_MODULE = "bfcl_eval.eval_checker.ast_eval.ast_checker"


@dataclass(frozen=True)
class Item:
    """One BFCL entry, in calltune's form (to prompt and judge) and in BFCL's (for its checker)."""

    id: str
    category: str
    messages: list[dict]  # the conversation up to the user's question (calltune data contract)
    tools: list[dict]  # OpenAI-form tools, JSON Schema types, names made safe (math_factorial)
    expected: list[dict]  # the importer's target calls ([] = no call: irrelevance)
    accept: list[dict]  # per expected call: {param: every value BFCL accepts; "" = may be left out}
    functions: list[dict]  # BFCL's own declarations, as its checker reads them
    ground_truth: list[dict]  # BFCL's possible answers ([] for irrelevance)
    names: dict[str, str]  # calltune tool name -> BFCL function name


# ---- data ----------------------------------------------------------------------------------------

def load_category(category: str) -> list[Item]:
    """Every entry of one held-out BFCL v4 category, in file order."""
    if category not in CATEGORIES:
        raise InputError(f"unknown BFCL category {category!r} (expected one of {', '.join(CATEGORIES)})",
                         field="categories")
    questions, answers = category_files(category)
    spec = {"path": str(questions)}
    if answers is not None:
        spec["answers"] = str(answers)
    return [_item(raw, category, spec["path"], line) for line, raw in importer.read(spec)]


def _item(raw, category: str, path: str, line: int) -> Item:
    example = importer.to_example(raw, path, line)
    functions = raw["function"] if isinstance(raw["function"], list) else [raw["function"]]
    ground_truth = raw["_ground_truth"] or []
    names = {importer.safe_name(f["name"]): f["name"] for f in functions}
    if len(names) != len(functions):
        raise InputError("two functions share a name once made safe", path=path, line=line, field="function")
    accept = [importer.accepted_arguments(params) for entry in ground_truth for params in entry.values()]
    if len(accept) != len(example.calls):
        raise InputError(f"{len(example.calls)} target calls for {len(accept)} possible answers", path=path,
                         line=line, field="ground_truth")
    messages = to_record(example, raw["id"], no_call_answer="")["messages"]
    return Item(id=raw["id"], category=category, messages=messages[: last_user_index(messages) + 1],
                tools=example.tools,
                expected=example.calls, accept=accept, functions=functions, ground_truth=ground_truth,
                names=names)


def load_items(categories=CATEGORIES, limit: int | None = None) -> list[Item]:
    """The entries of `categories`, the first `limit` of each when given."""
    return [item for category in categories for item in load_category(category)[:limit or None]]


def bfcl_calls(calls: list[dict], names: dict[str, str]) -> list[dict]:
    """Parsed calls in BFCL's output form, [{function: arguments}], under BFCL's function names
    (a name the item does not declare is kept as the model wrote it)."""
    return [{names.get(c["name"], c["name"]): c["arguments"]} for c in calls]


# ---- the two checkers ----------------------------------------------------------------------------

def calltune_judgement(item: Item, calls: list[dict], parse_error: str | None) -> Judgement:
    return judge(calls, parse_error, item.expected, item.tools, accept=item.accept)


def bfcl_verdict(item: Item, calls: list[dict], parse_error: str | None) -> tuple[bool, str]:
    """(correct, reason) by bfcl-eval's checker. A parse error is BFCL's failed decoding: wrong for
    an AST category, and for irrelevance only the calls read before the fault count."""
    if "irrelevance" in item.category:
        if calls:
            return False, f"irrelevance_error:decoder_success: called {', '.join(c['name'] for c in calls)}"
        return True, "no call, as expected"
    if parse_error is not None:
        return False, f"ast_decoder:decoder_failed: {parse_error}"
    checker, language = _checker()
    try:
        result = checker(copy.deepcopy(item.functions), copy.deepcopy(bfcl_calls(calls, item.names)),
                         copy.deepcopy(item.ground_truth), language, item.category, CHECKER_MODEL)
    except Exception as e:  # noqa: BLE001 - the checker assumes well-typed output in places
        return False, f"checker_error: {type(e).__name__}: {e}"
    if result["valid"]:
        return True, "valid"
    return False, f"{result.get('error_type', 'invalid')}: {_first_error(result.get('error'))}"


def _first_error(errors) -> str:
    while isinstance(errors, list) and errors:
        errors = errors[0]
    return errors if isinstance(errors, str) else json.dumps(errors, default=str)[:300]


@functools.cache
def _checker():
    """(bfcl_eval's ast_checker function, Language.PYTHON).

    ast_checker.py imports bfcl_eval.constants.model_config for one flag (convert_func_name reads
    MODEL_CONFIG_MAPPING[model].underscore_to_dot for dotted names), and that module imports every
    model-client SDK (anthropic, openai, ...), which calltune does not install. When it cannot be
    imported, a stand-in holding only our model's entry, with the flag of bfcl's own FunctionGemma
    entry, sits in sys.modules while the checker module imports, and is removed right after: the
    checking code is bfcl's, unchanged (a test compares the flag with bfcl's registry source).
    """
    from bfcl_eval.constants.enums import Language

    try:
        from bfcl_eval.eval_checker.ast_eval import ast_checker as module
    except ImportError:
        module = _import_with_registry_stub()
    return module.ast_checker, Language.PYTHON


def _import_with_registry_stub():
    import importlib

    stub = types.ModuleType(REGISTRY_MODULE)
    stub.MODEL_CONFIG_MAPPING = {CHECKER_MODEL.replace("_", "/"): types.SimpleNamespace(underscore_to_dot=False)}
    sys.modules[REGISTRY_MODULE] = stub
    try:
        return importlib.import_module(CHECKER_MODULE)
    finally:
        if sys.modules.get(REGISTRY_MODULE) is stub:
            del sys.modules[REGISTRY_MODULE]


# ---- scoring -------------------------------------------------------------------------------------

def score(item: Item, fmt, text: str, n_tokens: int) -> dict:
    """The per-item row: the output, its parsed calls and both verdicts with their reasons."""
    parsed = fmt.parse(text)
    judgement = calltune_judgement(item, parsed.calls, parsed.error)
    bfcl_ok, bfcl_reason = bfcl_verdict(item, parsed.calls, parsed.error)
    return {
        "id": item.id, "category": item.category, "raw_output": text, "n_generated_tokens": n_tokens,
        "calls": parsed.calls, "parse_error": parsed.error,
        "calltune_correct": judgement.ast_correct, "calltune_exact": judgement.exact_match,
        "calltune_verdict": judgement.verdict, "calltune_reason": judgement.reason,
        "bfcl_correct": bfcl_ok, "bfcl_reason": bfcl_reason, "agree": judgement.ast_correct == bfcl_ok,
    }


def summarize(rows: list[dict]) -> dict:
    """Per category and over all rows: n, accuracy by each checker, their agreement and more."""
    by_category = {c: [r for r in rows if r["category"] == c] for c in CATEGORIES}
    summary = {c: _rates(group) for c, group in by_category.items() if group}
    summary["all"] = _rates(rows)
    return summary


def _rates(rows: list[dict]) -> dict:
    def share(key) -> float:
        return round(sum(1 for r in rows if key(r)) / len(rows), DECIMALS)

    return {
        "n": len(rows),
        "bfcl_accuracy": share(lambda r: r["bfcl_correct"]),
        "calltune_ast_accuracy": share(lambda r: r["calltune_correct"]),
        "calltune_exact_match": share(lambda r: r["calltune_exact"]),
        "agreement": share(lambda r: r["agree"]),
        "parse_valid_rate": share(lambda r: r["parse_error"] is None),
        "call_rate": share(lambda r: bool(r["calls"])),
        "bfcl_checker_errors": sum(1 for r in rows if r["bfcl_reason"].startswith("checker_error")),
    }


def evaluate_bfcl(engine, fmt, items: list[Item], *, batch_size: int = BATCH_SIZE,
                  max_new_tokens: int = MAX_NEW_TOKENS, progress: bool = True,
                  constrained: bool = False) -> tuple[list[dict], dict]:
    """(per-item rows in item order, metrics) of a TorchEngine on `items`. With `constrained`, also
    the scores under schema-constrained decoding (calltune.constrain), as the main pipeline's
    evaluate computes them: an output that stays inside its item's grammar is kept, the others are
    generated again under the constraint; metrics["constrained"] holds them and each row's
    "constrained" key the constrained row (the same as the free one where it was kept)."""
    from calltune.engines.torch_engine import generate_in_batches

    prompts = [fmt.prompt(item.messages, item.tools) for item in items]
    with tqdm(total=len(prompts), desc=f"BFCL {engine.name}", unit="prompt", disable=not progress) as bar:
        start = time.perf_counter()
        generations = generate_in_batches(engine, prompts, max_new_tokens, fmt.stop_strings, batch_size,
                                          on_batch=bar.update)
        seconds = time.perf_counter() - start
    rows = [score(item, fmt, g.text, g.n_tokens) for item, g in zip(items, generations)]
    tokens = sum(g.n_tokens for g in generations)
    metrics = {
        "categories": summarize(rows),
        "generation": {"seconds": round(seconds, 2), "tokens": tokens,
                       "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None},
    }
    if constrained:
        metrics["constrained"] = constrain_rows(engine, fmt, items, rows, generations, batch_size=batch_size,
                                                max_new_tokens=max_new_tokens, progress=progress)
    return rows, metrics


def constrain_rows(engine, fmt, items: list[Item], rows: list[dict], generations, *, batch_size: int,
                   max_new_tokens: int, progress: bool) -> dict:
    """Constrained scores of `items` (evaluate_bfcl's `constrained`); sets rows[i]["constrained"]."""
    from calltune.constrain import Constraint
    from calltune.constrain.replay import within_grammar
    from calltune.constrain.wrapup import wrap_up_tokens
    from calltune.engines.torch_engine import generate_in_batches

    constraints = [Constraint.for_request(fmt, item.tools) for item in items]
    before_wrap_up = max_new_tokens - wrap_up_tokens(max_new_tokens)
    redo = [i for i, (c, g) in enumerate(zip(constraints, generations))
            if g.n_tokens > before_wrap_up
            or not within_grammar(c, engine.tokenizer, g.text, fmt.stop_strings, truncated=False)]
    start = time.perf_counter()
    with tqdm(total=len(redo), desc=f"BFCL {engine.name} constrained", unit="prompt", disable=not progress) as bar:
        again = generate_in_batches(engine, [fmt.prompt(items[i].messages, items[i].tools) for i in redo],
                                    max_new_tokens, fmt.stop_strings, batch_size, on_batch=bar.update,
                                    constraints=[constraints[i] for i in redo])
    seconds = time.perf_counter() - start
    constrained = [dict(row) for row in rows]
    for i, g in zip(redo, again):
        constrained[i] = score(items[i], fmt, g.text, g.n_tokens)
    for row, kept in zip(rows, constrained):
        row["constrained"] = {k: v for k, v in kept.items() if k not in ("id", "category")}
    return {"categories": summarize(constrained), "regenerated": len(redo), "seconds": round(seconds, 2)}


def rescore(fmt, rows: list[dict], metrics: dict) -> tuple[list[dict], dict]:
    """(rows, metrics) with every saved raw output (free and constrained) parsed and judged again by
    today's checkers; `metrics` (the earlier run's) keeps its generation figures, its scores are
    replaced. Nothing is generated, so a checker change is measured on the very same outputs."""
    wanted = {row.get("id") for row in rows}
    items = {item.id: item for item in load_items(CATEGORIES) if item.id in wanted}
    missing = [row.get("id") for row in rows if row.get("id") not in items]
    if missing:
        raise InputError(f"{len(missing)} rows name no held-out BFCL item (first: {missing[0]!r})",
                         field="id")
    again = []
    for row in rows:
        item = items[row["id"]]
        new = score(item, fmt, row["raw_output"], row["n_generated_tokens"])
        if "constrained" in row:
            kept = score(item, fmt, row["constrained"]["raw_output"], row["constrained"]["n_generated_tokens"])
            new["constrained"] = {k: v for k, v in kept.items() if k not in ("id", "category")}
        again.append(new)
    metrics = {**metrics, "categories": summarize(again), "rescored": True}
    if "constrained" in metrics or any("constrained" in row for row in again):
        constrained = [{"id": r["id"], "category": r["category"], **r.get("constrained", r)} for r in again]
        metrics["constrained"] = {**metrics.get("constrained", {}), "categories": summarize(constrained)}
    return again, metrics


def table(categories: dict) -> str:
    """A Markdown table of the per-category numbers (summarize's output)."""
    lines = ["| category | n | bfcl | calltune AST | agreement |", "|---|---:|---:|---:|---:|"]
    for name, m in categories.items():
        lines.append(f"| {name} | {m['n']} | {m['bfcl_accuracy']:.3f} | {m['calltune_ast_accuracy']:.3f} "
                     f"| {m['agreement']:.3f} |")
    return "\n".join(lines)


# ---- command line --------------------------------------------------------------------------------

def model_dtype(model_dir: Path) -> str:
    """The dtype the model directory was saved in (config.json), float32 when it does not say."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    dtype = config.get("torch_dtype") or config.get("dtype") or "float32"
    return dtype if dtype in ("float32", "bfloat16", "float16") else "float32"


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but PyTorch sees no CUDA device", field="device")
    return device


def _categories(values: tuple[str, ...]) -> list[str]:
    chosen = [c.strip() for value in values for c in value.split(",") if c.strip()] or list(CATEGORIES)
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise InputError(f"unknown BFCL categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} "
                         f"(expected {', '.join(CATEGORIES)})", field="categories")
    return list(dict.fromkeys(chosen))


@click.command(help=__doc__)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Metrics JSON: per category n, accuracy by each checker, agreement.")
@click.option("--predictions", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Per-item JSONL: id, category, raw output, parsed calls, both verdicts and reasons.")
@click.option("--categories", multiple=True, help=f"Comma-separated or repeated [default: {','.join(CATEGORIES)}].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items of each category.")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=MAX_NEW_TOKENS, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
              help="auto: cuda when available. CUDA runs bf16, CPU the model's own dtype.")
@click.option("--format", "format_name", type=click.Choice(["auto", "functiongemma", "generic"]), default="auto",
              show_default=True, help="Chat format; auto reads the model's tokenizer.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch.")
@click.option("--constrained/--no-constrained", default=False, show_default=True,
              help="Also score under schema-constrained decoding (outputs outside the grammar generated again).")
@click.option("--rescore", is_flag=True,
              help="Judge the raw outputs already in --predictions again and update --out's scores "
                   "(no generation; MODEL_DIR gives the tokenizer and format).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def main(model_dir, out, predictions, categories, limit, batch_size, max_new_tokens, device, format_name,
         threads, constrained, rescore, progress):
    from calltune.engines.torch_engine import TorchEngine
    from calltune.formats import get_format

    try:
        if not (model_dir / "config.json").is_file():
            raise InputError("not a Hugging Face model directory (no config.json)", path=model_dir)
        if rescore:
            return _rescore_files(model_dir, out, predictions, format_name)
        items = load_items(_categories(categories), limit)
        device = pick_device(device)
        dtype = "bfloat16" if device == "cuda" else model_dtype(model_dir)
        engine = TorchEngine(model_dir, dtype=dtype, device=device, threads=threads, name=model_dir.name)
        fmt = get_format(format_name, tokenizer=engine.tokenizer)
        rows, metrics = evaluate_bfcl(engine, fmt, items, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                      progress=progress, constrained=constrained)
    except InputError as e:
        click.echo(f"error: {e.describe()}", err=True)
        sys.exit(2)
    from importlib.metadata import version

    metrics = {"model": str(model_dir), "format": fmt.name, "device": device, "dtype": dtype,
               "batch_size": batch_size, "max_new_tokens": max_new_tokens, "limit": limit,
               "bfcl_eval": version("bfcl-eval"), **metrics}
    write_jsonl(predictions, rows)
    write_json(out, metrics)
    click.echo(table(metrics["categories"]))
    if constrained:
        click.echo(f"constrained ({metrics['constrained']['regenerated']} generated again):")
        click.echo(table(metrics["constrained"]["categories"]))


def _rescore_files(model_dir: Path, out: Path, predictions: Path, format_name: str) -> None:
    from transformers import AutoTokenizer

    from calltune.formats import get_format
    from calltune.io import read_json, read_jsonl

    for path in (predictions, out):
        if not path.is_file():
            raise InputError("--rescore needs the earlier run's file", path=path)
    fmt = get_format(format_name, tokenizer=AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False))
    rows, metrics = rescore(fmt, [row for _, row in read_jsonl(predictions)], read_json(out))
    write_jsonl(predictions, rows)
    write_json(out, metrics)
    click.echo(table(metrics["categories"]))
    if "constrained" in metrics:
        click.echo("constrained:")
        click.echo(table(metrics["constrained"]["categories"]))


if __name__ == "__main__":
    main()
