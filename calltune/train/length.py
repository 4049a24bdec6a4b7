"""How long a run is: epochs extended to at least `min_steps` optimizer steps, capped by `max_steps`,
and how often it evaluates.

A few dozen examples make only a handful of optimizer steps per epoch (52 examples at batch 16:
4 steps), far too few to learn from. `min_steps` adds whole epochs until the run has at least that
many steps, so every example is seen equally often, and the cosine schedule spans the real total.
A run that was lengthened this way also evaluates about SHORT_RUN_EVALS times, so that keep-best
(Trainer._note_eval) has several steps to choose from; a run long enough by itself keeps its
`eval_every` unchanged. Pure functions of the counts: a resumed run plans the same run.

`projected_s`: how long the rest of a plan takes at a measured pace (train.fit_schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

SHORT_RUN_EVALS = 6  # evaluations across a run that min_steps lengthened


@dataclass(frozen=True)
class RunLength:
    epochs: int  # passes over the data the run plans (train.epochs, or more to reach min_steps)
    total_steps: int  # optimizer steps, after the max_steps cap
    extended: bool  # min_steps made the run longer than train.epochs would
    eval_every: int  # optimizer steps between evaluations in this run


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def run_length(steps_per_epoch: int, epochs: int, min_steps: int = 0, max_steps: int = 0,
               eval_every: int = 1) -> RunLength:
    """Plan a run of `epochs` passes of `steps_per_epoch` steps, lengthened to whole epochs that
    reach `min_steps` (0 = off) and cut at `max_steps` (0 = no cap; an explicit cap wins)."""
    steps_per_epoch = max(1, steps_per_epoch)
    planned = max(epochs, ceil_div(min_steps, steps_per_epoch)) if min_steps > 0 else epochs
    total = planned * steps_per_epoch
    if max_steps:
        total = min(total, max_steps)
    extended = total > epochs * steps_per_epoch
    every = min(eval_every, max(1, ceil_div(total, SHORT_RUN_EVALS))) if extended else eval_every
    return RunLength(planned, total, extended, every)


def evals_between(step: int, end: int, every: int) -> int:
    """Validation passes after steps step+1..end: every `every` steps and at the end."""
    if end <= step:
        return 0
    return end // every - step // every + (end % every != 0)


def projected_s(step: int, total: int, step_s: float, eval_s: float, eval_every: int) -> float:
    """Seconds the steps after `step` up to `total` take, validation passes included."""
    return (total - step) * step_s + evals_between(step, total, eval_every) * eval_s
