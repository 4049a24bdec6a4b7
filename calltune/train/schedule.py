"""Learning rate as a pure function of the optimizer step: linear warmup, then cosine decay.

A function of the step alone (no scheduler object) makes resuming exact by construction.
"""

from __future__ import annotations

import math

FLOOR = 0.1  # the cosine ends at this fraction of the peak rate


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Rate for optimizer step `step` (0-based) of `total`."""
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))
