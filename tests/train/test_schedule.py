"""Warmup then cosine decay to 10% of the peak, as a pure function of the step."""

from __future__ import annotations

import pytest

from calltune.train.schedule import FLOOR, cosine, lr_at, progress_at


def test_warmup_rises_linearly_to_the_peak():
    rates = [lr_at(s, 1.0, warmup=4, total=20) for s in range(4)]
    assert rates == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_at(4, 1.0, warmup=4, total=20) == pytest.approx(1.0)


def test_cosine_decays_monotonically_to_the_floor():
    rates = [lr_at(s, 2e-4, warmup=2, total=30) for s in range(2, 30)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[0] == pytest.approx(2e-4)
    assert rates[-1] == pytest.approx(2e-4 * FLOOR)
    assert lr_at(100, 2e-4, warmup=2, total=30) == pytest.approx(2e-4 * FLOOR)  # clamped past the end


def test_no_warmup_and_single_step_runs():
    assert lr_at(0, 1.0, warmup=0, total=1) == pytest.approx(1.0)
    assert lr_at(0, 1.0, warmup=0, total=10) == pytest.approx(1.0)


def test_the_cosine_by_progress_is_the_step_schedule_and_clamps():
    # a time-bound run takes its progress from the clock: the same curve, addressed by share
    for step in range(3, 30):
        assert cosine(2e-4, progress_at(step, 3, 30)) == lr_at(step, 2e-4, warmup=3, total=30)
    assert cosine(1.0, 0.0) == 1.0 and cosine(1.0, 1.0) == pytest.approx(FLOOR)
    assert cosine(1.0, 1.7) == cosine(1.0, 1.0) and cosine(1.0, -0.2) == 1.0  # a clock past the budget
    assert progress_at(1, 3, 30) == 0.0 and progress_at(200, 3, 30) == 1.0
