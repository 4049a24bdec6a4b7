"""What schema-constrained decoding costs, per engine: tokens/s with and without the constraint, and
the constraint's own time per generated token.

    python bench/constrained_decoding.py --model-dir models/base --make-gguf bench/.cache/gguf --threads 2
    python bench/constrained_decoding.py --model-dir models/fused --gguf models/gguf/model-f16.gguf \
        --onnx models/onnx

Engines: PyTorch (--model-dir; token masks by llguidance), llama.cpp in-process (--gguf, or
--make-gguf DIR to convert --model-dir first; llama.cpp's GBNF grammar sampler), onnxruntime
(--onnx, an export directory) and mlx-lm (--mlx, on --model-dir), both with the same token masks
as PyTorch. Prompts: a few everyday requests
with the starter tools (data/tools.json), FunctionGemma format, greedy. Tokens/s is end to end
(prompt included), as evaluate reports it. "constraint ms/token" replays each constrained output
through the constraint alone: llguidance's mask over the whole vocabulary (plus consuming the
token), or llama.cpp's grammar check of the top candidates (plus accepting the token); "setup s"
is the one-time cost (llguidance wrapping the tokenizer; grammar compilation per request is
included in the per-token numbers' totals below it). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calltune.constrain import Constraint  # noqa: E402
from calltune.formats import get_format  # noqa: E402

QUERIES = [
    "What's the weather in Oslo in fahrenheit?",
    "Email bob@example.com that the meeting moved to 3pm, subject 'Meeting'",
    "Remind me to call mom tomorrow at 6pm",
    "Convert 120 euros to dollars",
    "What is 15% of 240?",
    "Tell me a joke about penguins",
]
SYSTEM = "You are a model that can do function calling with the following functions"


def prompts(fmt, tools):
    return [fmt.prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], tools)
            for q in QUERIES]


def run(engine, fmt, tools, max_new_tokens: int, constrained: bool):
    """(tokens/s, outputs) over the prompts, after one warm-up generation."""
    stop = fmt.stop_strings
    make = (lambda: Constraint.for_request(fmt, tools)) if constrained else (lambda: None)
    engine.generate(prompts(fmt, tools)[0], 4, stop, **({"constraint": make()} if constrained else {}))
    tokens, seconds, outputs = 0, 0.0, []
    for prompt in prompts(fmt, tools):
        extra = {"constraint": make()} if constrained else {}
        start = time.perf_counter()
        generation = engine.generate(prompt, max_new_tokens, stop, **extra)
        seconds += time.perf_counter() - start
        tokens += generation.n_tokens
        outputs.append(generation.text)
    return tokens / seconds, outputs


def mask_cost(fmt, tools, hf_tokenizer, outputs) -> list[float]:
    """Seconds per token of llguidance's mask (+ consume) replaying `outputs`."""
    times = []
    n_vocab = len(hf_tokenizer)  # len() of a Hugging Face tokenizer takes ~0.25 s for Gemma: once
    for text in outputs:
        mask = Constraint.for_request(fmt, tools).token_mask(hf_tokenizer)
        for token in hf_tokenizer(text, add_special_tokens=False)["input_ids"]:
            start = time.perf_counter()
            mask.allowed(n_vocab)
            mask.consume(token)
            times.append(time.perf_counter() - start)
    return times


def grammar_cost(fmt, tools, engine, outputs) -> list[float]:
    """Seconds per token of llama.cpp's grammar sampler (best + accept) replaying `outputs`, with
    logits that rank the replayed token first (the common case: the model's choice is allowed)."""
    times = []
    n_vocab = engine.model.n_vocab
    rng = np.random.default_rng(0)
    for text in outputs:
        sampler = engine.grammar_sampler(Constraint.for_request(fmt, tools))
        for token in engine.tokenize(text):
            logits = rng.standard_normal(n_vocab).astype(np.float32)
            logits[token] = 100.0
            start = time.perf_counter()
            chosen = sampler.best(logits)
            sampler.accept(token if chosen is None else chosen)
            times.append(time.perf_counter() - start)
    return times


def row(name, free, constrained, cost, setup):
    ms = [t * 1000 for t in cost]
    return (f"| {name} | {free:.1f} | {constrained:.1f} | {constrained / free:.2f}x | "
            f"{statistics.mean(ms):.2f} | {np.percentile(ms, 95):.2f} | {setup:.1f} |")


@click.command(help=__doc__)
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=ROOT / "models/base")
@click.option("--gguf", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--make-gguf", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Convert --model-dir to an f16 GGUF in this directory first (if not there yet).")
@click.option("--onnx", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--tools", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=ROOT / "data/tools.json")
@click.option("--max-new-tokens", default=64, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--skip-torch", is_flag=True)
@click.option("--mlx", "with_mlx", is_flag=True, help="Also mlx-lm on --model-dir (mlx[cpu] on Linux).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the numbers as JSON.")
def main(model_dir, gguf, make_gguf, onnx, tools, max_new_tokens, threads, skip_torch, with_mlx, out):
    from transformers import AutoTokenizer

    from calltune.constrain.mask import llg_tokenizer

    fmt = get_format("functiongemma")
    tool_list = json.loads(tools.read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    start = time.perf_counter()
    llg_tokenizer(tokenizer)
    setup = time.perf_counter() - start
    lines = ["| engine | tokens/s free | tokens/s constrained | ratio | constraint ms/token (mean) | p95 | setup s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    results = {}
    engines = []
    if not skip_torch:
        from calltune.engines.torch_engine import TorchEngine

        engines.append(("torch", TorchEngine(model_dir, threads=threads), "mask"))
    if with_mlx:
        from calltune.engines.mlx_engine import MlxEngine

        engines.append(("mlx", MlxEngine(model_dir), "mask"))
    if onnx:
        from calltune.engines.onnx_engine import OnnxEngine

        engines.append(("onnx", OnnxEngine(onnx, threads=threads), "mask"))
    if make_gguf and not gguf:
        from calltune.export.gguf import export_gguf

        if not any(Path(make_gguf).glob("*.gguf")):
            export_gguf(model_dir, make_gguf, ["f16"])
        gguf = next(Path(make_gguf).glob("*.gguf"))
    if gguf:
        from calltune.engines.llama_cpp import LlamaCppEngine

        engines.append(("llama.cpp", LlamaCppEngine(gguf, threads=threads), "gbnf"))
    for name, engine, kind in engines:
        free, _ = run(engine, fmt, tool_list, max_new_tokens, constrained=False)
        constrained, outputs = run(engine, fmt, tool_list, max_new_tokens, constrained=True)
        cost = mask_cost(fmt, tool_list, tokenizer, outputs) if kind == "mask" else \
            grammar_cost(fmt, tool_list, engine, outputs)
        results[name] = {"tokens_per_s": free, "tokens_per_s_constrained": constrained,
                         "constraint_ms_per_token_mean": statistics.mean(cost) * 1000,
                         "constraint_ms_per_token_p95": float(np.percentile(cost, 95)) * 1000,
                         "valid": [fmt.parse(t).ok for t in outputs]}
        lines.append(row(name, free, constrained, cost, setup if kind == "mask" else 0.0))
        click.echo(lines[-1], err=True)
    click.echo("\n".join(lines))
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
