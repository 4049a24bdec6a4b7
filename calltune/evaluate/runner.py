"""Run one engine over the test examples: render, generate, parse, judge, time.

Constrained evaluation (evaluate.constrained) generates under each example's call grammar
(calltune.constrain) and keeps the unconstrained numbers beside it: metrics["unconstrained"].
Greedy decoding under a grammar picks the same tokens as without it wherever the model's own
choice is allowed, so an unconstrained output inside the grammar that ended before the budget's
wrap-up steps (calltune.constrain.wrapup) is reused, and only the others are generated again
(`constrained_regenerated` counts them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from calltune.errors import InputError
from calltune.engines.base import Engine
from calltune.evaluate.metrics import aggregate, judge
from calltune.evaluate.predictions import Prediction

WARMUP_TOKENS = 4


def evaluate_target(engine: Engine, fmt, examples: Sequence[dict], *, max_new_tokens: int,
                    warmup: bool = True, progress: bool = False, constrained: bool = False) -> list[Prediction]:
    """Predictions for `examples` (data-contract rows) in order.

    With `warmup`, one short untimed generation first keeps one-time costs (lazy init, allocator
    growth) out of the latency percentiles.
    """
    if warmup and examples:
        engine.generate(_prompt(fmt, examples[0]), WARMUP_TOKENS, fmt.stop_strings)
    return [
        evaluate_example(engine, fmt, example, max_new_tokens=max_new_tokens, constrained=constrained)
        for example in tqdm(examples, desc=f"evaluate {engine.name}", disable=not progress)
    ]


def evaluate_artifact(target, fmt, examples: Sequence[dict], *, max_new_tokens: int, threads: int | None = None,
                      progress: bool = False, constrained: bool = False,
                      tokenizer=None) -> tuple[list[Prediction], dict]:
    """Predictions and metrics (size on disk included) of one calltune.evaluate.targets.Target.

    With `constrained`, the predictions are the constrained ones and metrics["unconstrained"]
    holds the metrics without the constraint; `tokenizer` (the model's Hugging Face tokenizer)
    decides which unconstrained outputs are reused (without it every example is generated twice)."""
    engine = target.engine(threads)
    size_mb = size_on_disk_mb(*target.size_paths())
    free = evaluate_target(engine, fmt, examples, max_new_tokens=max_new_tokens, progress=progress)
    if not constrained:
        return free, aggregate(free, size_mb=size_mb)
    predictions = constrain_predictions(engine, fmt, examples, free, max_new_tokens=max_new_tokens,
                                        tokenizer=tokenizer, progress=progress)
    regenerated = sum(1 for p, q in zip(predictions, free) if p is not q)
    unconstrained = {k: v for k, v in aggregate(free).items() if k != "size_mb"}
    return predictions, aggregate(predictions, size_mb=size_mb) | {
        "constrained": True, "constrained_regenerated": regenerated, "unconstrained": unconstrained}


def constrain_predictions(engine: Engine, fmt, examples: Sequence[dict], free: Sequence[Prediction], *,
                          max_new_tokens: int, tokenizer=None, progress: bool = False) -> list[Prediction]:
    """The constrained prediction of every example: its unconstrained one where that stays inside
    the grammar (the same object), else a constrained generation."""
    from calltune.constrain import Constraint
    from calltune.constrain.replay import within_grammar
    from calltune.constrain.wrapup import wrap_up_tokens

    out = []
    for example, prediction in tqdm(list(zip(examples, free)), desc=f"constrain {engine.name}",
                                    disable=not progress):
        constraint = Constraint.for_request(fmt, example["tools"])
        # an output that reached the budget's wrap-up steps may end otherwise under the constraint
        before_wrap_up = prediction.n_generated_tokens <= max_new_tokens - wrap_up_tokens(max_new_tokens)
        if tokenizer is not None and before_wrap_up and within_grammar(constraint, tokenizer, prediction.raw_output,
                                                                       fmt.stop_strings, truncated=False):
            out.append(prediction)
        else:
            out.append(evaluate_example(engine, fmt, example, max_new_tokens=max_new_tokens, constraint=constraint))
    return out


def evaluate_example(engine: Engine, fmt, example: dict, *, max_new_tokens: int, constrained: bool = False,
                     constraint=None) -> Prediction:
    """One example's prediction; `constrained` (or a ready `constraint`) decodes under its call grammar."""
    prompt = _prompt(fmt, example)
    if constrained and constraint is None:
        from calltune.constrain import Constraint

        constraint = Constraint.for_request(fmt, example["tools"])
    extra = {} if constraint is None else {"constraint": constraint}
    start = time.perf_counter()
    text, n_tokens = engine.generate(prompt, max_new_tokens, fmt.stop_strings, **extra)
    return _prediction(fmt, example, prompt, text, n_tokens, time.perf_counter() - start)


def evaluate_batched(engine, fmt, examples: Sequence[dict], *, max_new_tokens: int,
                     batch_size: int) -> list[Prediction]:
    """evaluate_target's free predictions from a batching TorchEngine (GPU sweeps: the same greedy
    outputs in a fraction of the time); latency_s is the batch's time shared among its rows."""
    from calltune.engines.torch_engine import generate_in_batches

    prompts = [_prompt(fmt, example) for example in examples]
    start = time.perf_counter()
    generations = generate_in_batches(engine, prompts, max_new_tokens, fmt.stop_strings, batch_size)
    latency = (time.perf_counter() - start) / max(1, len(examples))
    return [_prediction(fmt, example, prompt, text, n_tokens, latency)
            for example, prompt, (text, n_tokens) in zip(examples, prompts, generations)]


def _prediction(fmt, example: dict, prompt: str, text: str, n_tokens: int, latency: float) -> Prediction:
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
