"""Run one engine over the test examples: render, generate, parse, judge, time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from calltune.errors import InputError
from calltune.evaluate.engines import Engine
from calltune.evaluate.metrics import aggregate, judge
from calltune.evaluate.predictions import Prediction

WARMUP_TOKENS = 4


def evaluate_target(engine: Engine, fmt, examples: Sequence[dict], *, max_new_tokens: int,
                    warmup: bool = True, progress: bool = False) -> list[Prediction]:
    """Predictions for `examples` (data-contract rows) in order.

    With `warmup`, one short untimed generation first keeps one-time costs (lazy init, allocator
    growth) out of the latency percentiles.
    """
    if warmup and examples:
        engine.generate(_prompt(fmt, examples[0]), WARMUP_TOKENS, fmt.stop_strings)
    return [
        evaluate_example(engine, fmt, example, max_new_tokens=max_new_tokens)
        for example in tqdm(examples, desc=f"evaluate {engine.name}", disable=not progress)
    ]


def evaluate_artifact(target, fmt, examples: Sequence[dict], *, max_new_tokens: int, threads: int | None = None,
                      progress: bool = False) -> tuple[list[Prediction], dict]:
    """Predictions and metrics (size on disk included) of one calltune.evaluate.targets.Target."""
    predictions = evaluate_target(target.engine(threads), fmt, examples, max_new_tokens=max_new_tokens,
                                  progress=progress)
    return predictions, aggregate(predictions, size_mb=size_on_disk_mb(*target.size_paths()))


def evaluate_example(engine: Engine, fmt, example: dict, *, max_new_tokens: int) -> Prediction:
    prompt = _prompt(fmt, example)
    start = time.perf_counter()
    text, n_tokens = engine.generate(prompt, max_new_tokens, fmt.stop_strings)
    latency = time.perf_counter() - start
    parsed = fmt.parse(text)
    expected = fmt.expected(example["messages"])
    return Prediction(
        id=example["id"], prompt=prompt, raw_output=text, calls=parsed.calls, expected=expected,
        parse_error=parsed.error, latency_s=latency, n_generated_tokens=n_tokens,
        judgement=judge(parsed.calls, parsed.error, expected, example["tools"], accept=example.get("accept")),
    )


def _prompt(fmt, example: dict) -> str:
    return fmt.prompt(example["messages"], example["tools"])


def size_on_disk_mb(*paths) -> float:
    """Total size in MB (10^6 bytes) of the given files and directories (recursively)."""
    total = 0
    for path in map(Path, paths):
        if not path.exists():
            raise InputError("artifact not found", path=path)
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(os.path.getsize(f) for f in files)
    return total / 1e6
