"""GGUF sizes and llama.cpp speed: convert a model directory, quantize, time prompt and decode.

    python bench/gguf_speed.py models/fused --out /tmp/gguf-bench --threads 1 --threads 2

Prints a Markdown table (file size, prompt tokens/s, decode tokens/s per thread count) for f16
and each quantization. Decode speed is greedy generation of --tokens tokens after a FunctionGemma
prompt, best of --repeats runs. The load average goes with each row: on a shared machine, more
threads than free cores makes llama.cpp's per-operation thread barriers stall (measured here at
load 8 on 2 cores: 2 threads decode 10-20x slower than 1).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from calltune.export.gguf import export_gguf, gguf_name, quantize_gguf

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "city"}},
                   "required": ["location"]}}}]
MESSAGES = [{"role": "system", "content": "You are a model that can do function calling with the following functions"},
            {"role": "user", "content": "What is the weather in Tokyo today?"}]


def speed(gguf: Path, threads: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(prompt tokens/s, decode tokens/s), best of `repeats`: the prompt in one llama_decode call,
    then `tokens` greedy steps that never stop early (a fixed amount of decode work)."""
    from calltune.engines.libllama import Context, Model
    from calltune.formats import get_format

    model = Model(gguf)
    context = Context(model, n_ctx=1024, threads=threads)
    ids = model.tokenize(get_format("functiongemma").prompt(MESSAGES, TOOLS))
    best_prompt = best_decode = 0.0
    for _ in range(repeats):
        context.keep(0)
        start = time.perf_counter()
        token = int(context.eval(ids).argmax())
        first = time.perf_counter()  # prompt evaluated, first token chosen
        for _ in range(tokens - 1):
            token = int(context.eval([token]).argmax())
        end = time.perf_counter()
        best_prompt = max(best_prompt, len(ids) / (first - start))
        best_decode = max(best_decode, (tokens - 1) / (end - first))
    return best_prompt, best_decode


@click.command(help=__doc__)
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="/tmp/gguf-bench", show_default=True, type=click.Path(file_okay=False))
@click.option("--quant", multiple=True, default=["q8_0", "q4_K_M"], show_default=True)
@click.option("--threads", "thread_counts", multiple=True, type=int, default=[2], show_default=True)
@click.option("--tokens", default=128, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(model_dir, out, quant, thread_counts, tokens, repeats):
    out = Path(out)
    exported = export_gguf(model_dir, out / "float", ["f16"])
    quantized = quantize_gguf(out / "float", out / "quantized", list(quant))
    rows = [("f16", out / "float" / gguf_name("f16"), exported["f16"])]
    rows += [(kind, out / "quantized" / gguf_name(kind), quantized[kind]) for kind in quant]
    click.echo("| type | size (MB) | threads | prompt tok/s | decode tok/s | load avg | tensor types |\n"
               "|---|---|---|---|---|---|---|")
    for kind, path, report in rows:
        for threads in thread_counts:
            load = os.getloadavg()[0]
            prompt, decode = speed(path, threads, tokens, repeats)
            click.echo(f"| {kind} | {path.stat().st_size / 1e6:.0f} | {threads} | {prompt:.0f} | {decode:.1f} | "
                       f"{load:.1f} | {report['tensor_types']} |")


if __name__ == "__main__":
    main()
