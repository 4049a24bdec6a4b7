"""Learning rate as a pure function of the optimizer step: linear warmup, then cosine decay.

A function of the step alone (no scheduler object) makes resuming exact by construction. A run
whose time budget binds (Trainer, train.fit_schedule) instead takes its progress through the cosine
from the clock once that is ahead of the steps (`cosine` with the larger share), so it ends at the
floor when the budget ends rather than being cut at a high rate.
"""

from __future__ import annotations

import math

FLOOR = 0.1  # the cosine ends at this fraction of the peak rate


def progress_at(step: int, warmup: int, total: int) -> float:
    """How far optimizer step `step` (0-based) of `total` is through the cosine, 0..1."""
    span = max(1, total - warmup - 1)
    return min(1.0, max(0.0, (step - warmup) / span))


def cosine(peak: float, progress: float) -> float:
    """The rate at `progress` (0..1, clamped) through the cosine."""
    progress = min(1.0, max(0.0, progress))
    return peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Rate for optimizer step `step` (0-based) of `total`."""
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    return cosine(peak, progress_at(step, warmup, total))
