"""A moving average of the trained weights (calltune.train.ema, train.ema): the average follows its
formula, training never sees it (same losses, same raw weights as a plain run), validation and
keep-best score it, the run ends with it, a checkpoint carries it (resume == uninterrupted), and a
checkpoint without it is refused with a clear error."""

from __future__ import annotations

import pytest
import torch

from calltune.errors import InputError
from calltune.train.ema import WeightAverage
from calltune.train.lora import load_trainable_state
from test_trainer import Crash, adapter, crash_at, data, make_trainer  # noqa: F401  (data: a fixture)

DECAY = 0.7


def test_the_average_follows_its_formula_and_applied_restores_the_weights():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    average = WeightAverage({"w": w}, DECAY)
    expected = w.detach().clone()
    for value in ([3.0, 0.0], [5.0, 4.0], [-1.0, 1.0]):
        with torch.no_grad():
            w.copy_(torch.tensor(value))
        average.update()
        expected = DECAY * expected + (1 - DECAY) * torch.tensor(value)
    torch.testing.assert_close(average.average["w"], expected)
    with average.applied():
        torch.testing.assert_close(w.detach(), expected)
    assert torch.equal(w.detach(), torch.tensor([-1.0, 1.0]))  # its own values again
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("a failing validation pass")
    assert torch.equal(w.detach(), torch.tensor([-1.0, 1.0]))  # also when the block fails


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightAverage({"w": torch.nn.Parameter(torch.zeros(1))}, decay)


def test_training_never_sees_the_average_and_the_run_ends_with_it(tiny_gemma_dir, data):
    """No valid set (nothing kept): the result is the average of the per-step weights, computed here
    by hand from a plain run's weights after every step; the losses are the plain run's."""
    train, _ = data
    steps = []
    plain = make_trainer(tiny_gemma_dir, (train, []), max_steps=6,
                         callback=lambda record: steps.append(adapter(plain)))
    start = adapter(plain)
    plain_run = plain.fit()
    averaged = make_trainer(tiny_gemma_dir, (train, []), max_steps=6, ema=DECAY)
    averaged_run = averaged.fit()
    assert [r["train_loss"] for r in averaged_run["history"]] == [r["train_loss"] for r in plain_run["history"]]
    expected = start
    for weights in steps:
        expected = {k: DECAY * expected[k] + (1 - DECAY) * weights[k] for k in expected}
    result = adapter(averaged)
    for k in expected:
        torch.testing.assert_close(result[k], expected[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(result[k], steps[-1][k]) for k in result)  # not the last weights


def test_validation_scores_the_average_and_keep_best_keeps_it(tiny_gemma_dir, data):
    trainer = make_trainer(tiny_gemma_dir, data, max_steps=6, eval_every=3, ema=DECAY)
    raw_losses = []

    def score_raw(record):  # the raw weights' valid loss at each evaluated step, for contrast
        if "valid_loss" in record:
            raw_losses.append((record["valid_loss"], trainer.evaluate()))

    trainer.callback = score_raw
    run = trainer.fit()
    assert len(raw_losses) == 2
    assert all(averaged != raw for averaged, raw in raw_losses)  # what was recorded is not the raw weights'
    # the model ends with the kept weights: the average at the best step, whose loss was recorded
    assert trainer.evaluate() == pytest.approx(run["best_valid_loss"], rel=1e-6)
    load_trainable_state(trainer.model, trainer.ema.average)  # the latest average, the second scored
    assert trainer.evaluate() == pytest.approx(raw_losses[1][0], rel=1e-6)


def test_an_averaged_run_resumes_exactly(tiny_gemma_dir, data, tmp_path):
    full_trainer = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "a", ema=DECAY)
    full = full_trainer.fit()
    first = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "b", callback=crash_at(5), ema=DECAY)
    with pytest.raises(Crash):
        first.fit()
    resumed_trainer = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "b", resume=True, ema=DECAY)
    resumed = resumed_trainer.fit()
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]
    for a, b in zip(full["history"], resumed["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5
        assert abs(a.get("valid_loss", 0) - b.get("valid_loss", 0)) <= 1e-5
    a, b = adapter(full_trainer), adapter(resumed_trainer)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_resuming_an_averaged_run_from_a_checkpoint_without_the_average_is_refused(tiny_gemma_dir, data, tmp_path):
    first = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path, callback=crash_at(4), ema=DECAY)
    with pytest.raises(Crash):
        first.fit()
    (average,) = tmp_path.glob("step-*/average.safetensors")
    average.unlink()
    again = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path, resume=True, ema=DECAY)
    with pytest.raises(InputError, match="no weight average") as err:
        again.fit()
    assert err.value.field == "train.resume"
