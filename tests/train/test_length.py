"""Run length: epochs lengthened to min_steps, the max_steps cap, the eval cadence of short runs."""

from __future__ import annotations

from calltune.train.length import SHORT_RUN_EVALS, evals_between, projected_s, run_length


def test_small_data_is_lengthened_to_whole_epochs_with_more_evaluations():
    # 52 examples at batch 16: 4 steps an epoch; 2 epochs would be 8 steps
    plan = run_length(4, epochs=2, min_steps=60, max_steps=0, eval_every=40)
    assert (plan.epochs, plan.total_steps, plan.extended) == (15, 60, True)
    assert plan.eval_every == 60 // SHORT_RUN_EVALS == 10
    uneven = run_length(7, epochs=2, min_steps=60, eval_every=40)
    assert (uneven.epochs, uneven.total_steps) == (9, 63)  # whole epochs: every example seen equally often


def test_the_starter_is_not_changed():
    # the committed starter run: 40 prompt-grouped batches an epoch (526 rows, batch 16), 2 epochs
    plan = run_length(40, epochs=2, min_steps=60, max_steps=0, eval_every=40)
    assert plan == run_length(40, epochs=2, min_steps=0, max_steps=0, eval_every=40)
    assert (plan.epochs, plan.total_steps, plan.extended, plan.eval_every) == (2, 80, False, 40)


def test_max_steps_wins_and_min_steps_zero_is_off():
    assert run_length(4, epochs=2, min_steps=60, max_steps=20, eval_every=40).total_steps == 20
    assert run_length(4, epochs=2, min_steps=60, max_steps=6, eval_every=40).extended is False
    off = run_length(4, epochs=2, min_steps=0, max_steps=0, eval_every=40)
    assert (off.epochs, off.total_steps, off.extended, off.eval_every) == (2, 8, False, 40)


def test_a_smaller_eval_every_is_kept():
    assert run_length(4, epochs=2, min_steps=60, eval_every=3).eval_every == 3
    assert run_length(1, epochs=1, min_steps=2, eval_every=40).eval_every == 1



def test_projected_time_counts_steps_and_validation_passes():
    # from step 5 to 11 at 10 s a step and 4 s a validation pass (every 10 steps and at the end): 68 s
    assert projected_s(5, 11, 10.0, 4.0, 10) == 6 * 10 + 2 * 4
    assert projected_s(5, 20, 10.0, 4.0, 10) == 15 * 10 + 2 * 4  # 20 is both a regular pass and the end
    assert projected_s(5, 5, 10.0, 4.0, 10) == 0
    assert evals_between(5, 20, 10) == 2 and evals_between(5, 21, 10) == 3 and evals_between(10, 11, 10) == 1
