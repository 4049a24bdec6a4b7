"""The training loop on a tiny Gemma: loss falls, exact resume, seeded reproducibility, grad
accumulation, early stopping with keep-best, checkpoints, min_steps and the max_minutes budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from calltune.errors import InputError
from calltune.formats import get_format
from calltune.params import load_params
from calltune.train.datasets import tokenize_split
from calltune.train.device import seed_everything
from calltune.train.lora import load_base_model, make_trainable, trainable_state
from calltune.train.schedule import cosine, lr_at, progress_at
from calltune.train.trainer import Trainer, TrainConfig
from train_helpers import canonical_rows, write_rows

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]
LORA = {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}  # dropout: RNG in play


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def data(tiny_gemma_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer-data")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    fmt = get_format("functiongemma")
    train, _ = tokenize_split(write_rows(tmp / "train.jsonl", canonical_rows(12, seed=1)), fmt, tokenizer, 1024)
    valid, _ = tokenize_split(write_rows(tmp / "valid.jsonl", canonical_rows(4, seed=2)), fmt, tokenizer, 1024)
    return train, valid


def make_trainer(base_dir, data, seed=5, checkpoint_dir=None, callback=None, lora=LORA, **cfg):
    seed_everything(seed)
    model = make_trainable(load_base_model(base_dir, "lora", torch.float32, CPU), "lora", lora)
    options = dict(lr=5e-3, warmup_steps=2, epochs=2, batch_size=4, grad_accum=1, eval_every=2, save_every=2,
                   seed=seed)
    options.update(cfg)
    return Trainer(model, data[0], data[1], TrainConfig(**options), CPU, pad_id=0, checkpoint_dir=checkpoint_dir,
                   fingerprint="fp", progress=False, callback=callback)


def adapter(trainer) -> dict[str, torch.Tensor]:
    return trainable_state(trainer.model)


def crash_at(step):
    def callback(record):
        if record["step"] == step:
            raise Crash
    return callback


def test_loss_falls(tiny_gemma_dir, data):
    train, _ = data
    trainer = make_trainer(tiny_gemma_dir, (train, train), lr=2e-2, epochs=4, eval_every=100,
                           lora={**LORA, "target_modules": ["all-linear"], "dropout": 0.0})
    before = trainer.evaluate()
    summary = trainer.fit()
    after = trainer.evaluate()
    assert after < before - 0.3, (before, after)
    assert summary["last_train_loss"] < summary["first_train_loss"]


def test_resume_continues_exactly(tiny_gemma_dir, data, tmp_path):
    straight = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "a")
    full = straight.fit()

    first = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "b", callback=crash_at(5))
    with pytest.raises(Crash):
        first.fit()
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["step-0000004"]  # the newest checkpoint only
    resumed = make_trainer(tiny_gemma_dir, data, seed=5, checkpoint_dir=tmp_path / "b", resume=True).fit()

    assert full["steps"] == resumed["steps"] == straight.total_steps
    assert len(resumed["history"]) == len(full["history"])
    for a, b in zip(full["history"], resumed["history"]):
        assert a["step"] == b["step"]
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5
        assert abs(a.get("valid_loss", 0) - b.get("valid_loss", 0)) <= 1e-5
    assert full["best_step"] == resumed["best_step"]


def test_same_seed_same_adapter_other_seed_other_adapter(tiny_gemma_dir, data):
    one = make_trainer(tiny_gemma_dir, data, max_steps=3)
    one.fit()
    two = make_trainer(tiny_gemma_dir, data, max_steps=3)
    two.fit()
    three = make_trainer(tiny_gemma_dir, data, seed=6, max_steps=3)
    three.fit()
    a, b, c = adapter(one), adapter(two), adapter(three)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_grad_accumulation_equals_one_big_batch(tiny_gemma_dir, data):
    big = make_trainer(tiny_gemma_dir, data, batch_size=4, grad_clip=0.0, lora={**LORA, "dropout": 0.0})
    small = make_trainer(tiny_gemma_dir, data, batch_size=2, grad_accum=2, grad_clip=0.0, lora={**LORA, "dropout": 0.0})
    one = big.optimizer_step([[0, 1, 2, 3]])
    two = small.optimizer_step([[0, 1], [2, 3]])
    assert one["train_loss"] == pytest.approx(two["train_loss"], rel=1e-6)
    # AdamW's first moment after one step is (1 - beta1) * gradient: the gradients agree
    for p_big, p_small in zip(big.params, small.params):
        torch.testing.assert_close(small.optimizer.state[p_small]["exp_avg"], big.optimizer.state[p_big]["exp_avg"],
                                   rtol=1e-4, atol=1e-9)


def test_early_stopping_keeps_the_best_weights(tiny_gemma_dir, data, monkeypatch):
    snapshots = {}
    trainer = make_trainer(tiny_gemma_dir, data, eval_every=1, patience=2, epochs=10,
                           callback=lambda r: snapshots.__setitem__(r["step"], adapter(trainer)))
    scripted = iter([3.0, 2.0, 2.5, 2.1, 1.0])
    monkeypatch.setattr(trainer, "evaluate", lambda: next(scripted))
    summary = trainer.fit()
    assert summary["stopped_early"] and summary["steps"] == 4  # two evals without improvement after step 2
    assert summary["best_step"] == 2 and summary["best_valid_loss"] == 2.0 and summary["kept"] == "best"
    final = adapter(trainer)
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert any(not torch.equal(final[k], snapshots[4][k]) for k in final)


def test_max_steps_caps_the_run(tiny_gemma_dir, data):
    trainer = make_trainer(tiny_gemma_dir, data, max_steps=2, epochs=5)
    assert trainer.total_steps == 2 and trainer.fit()["steps"] == 2


def test_no_validation_set_keeps_the_last_weights(tiny_gemma_dir, data):
    trainer = make_trainer(tiny_gemma_dir, (data[0], []), max_steps=2)
    summary = trainer.fit()
    assert summary["best_valid_loss"] is None and summary["kept"] == "last"


def test_resume_refuses_a_checkpoint_from_other_params(tiny_gemma_dir, data, tmp_path):
    first = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path, callback=crash_at(3))
    with pytest.raises(Crash):
        first.fit()
    other = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path, resume=True)
    other.fingerprint = "something else"
    with pytest.raises(InputError) as err:
        other.fit()
    assert err.value.field == "train.resume" and "step-0000002" in err.value.path


def test_resume_without_a_checkpoint_starts_fresh(tiny_gemma_dir, data, tmp_path):
    trainer = make_trainer(tiny_gemma_dir, data, checkpoint_dir=Path(tmp_path / "empty"), resume=True, max_steps=1)
    assert not trainer.restore()
    assert trainer.fit()["steps"] == 1


def test_min_steps_lengthens_a_small_run_with_a_cosine_over_the_real_total(tiny_gemma_dir, data):
    trainer = make_trainer(tiny_gemma_dir, data, epochs=2, min_steps=10, eval_every=40, warmup_steps=1)
    assert trainer.steps_per_epoch == 3  # 12 examples, batch 4
    summary = trainer.fit()
    assert summary["steps"] == summary["total_steps"] == 12 and summary["epochs"] == 4  # 2 epochs -> 4 whole ones
    assert summary["extended_by_min_steps"] and summary["planned_epochs"] == 4
    assert summary["eval_every"] == 2  # ~6 evaluations instead of only the last one
    assert [r["step"] for r in summary["history"] if "valid_loss" in r] == [2, 4, 6, 8, 10, 12]
    assert summary["best_step"] in (2, 4, 6, 8, 10, 12) and summary["kept"] == "best"
    assert [r["lr"] for r in summary["history"]] == [lr_at(s, 5e-3, 1, 12) for s in range(12)]


def test_max_minutes_stops_cleanly_keeps_best_and_resumes_exactly(tiny_gemma_dir, data, tmp_path):
    straight = make_trainer(tiny_gemma_dir, data, max_steps=4, checkpoint_dir=tmp_path / "a").fit()

    budget = make_trainer(tiny_gemma_dir, data, max_steps=4, checkpoint_dir=tmp_path / "b", max_minutes=1e-6)
    stopped = budget.fit()  # 60 microseconds: the first step already passes it
    assert stopped["stopped_at_budget"] and stopped["steps"] == 1 and stopped["total_steps"] == 4
    assert stopped["max_minutes"] == 1e-6 and stopped["train_s"] > 0
    assert "valid_loss" in stopped["history"][0]  # evaluated at the stop, so keep-best sees the last weights
    assert stopped["best_step"] == 1 and stopped["kept"] == "best"
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["step-0000001"]  # checkpointed at the stop

    resumed = make_trainer(tiny_gemma_dir, data, max_steps=4, checkpoint_dir=tmp_path / "b", resume=True).fit()
    assert not resumed["stopped_at_budget"] and resumed["steps"] == 4
    assert [r["step"] for r in resumed["history"]] == [1, 2, 3, 4]
    for a, b in zip(straight["history"], resumed["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5
    assert resumed["history"][-1]["valid_loss"] == pytest.approx(straight["history"][-1]["valid_loss"], abs=1e-5)


class FakeClock:
    """The loop's clock, advanced `step_s` seconds by the callback after every optimizer step."""

    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now

    def tick(self, record) -> None:
        self.now += self.step_s


def fitted_trainer(base_dir, data, max_minutes, checkpoint_dir=None, crash=None, **cfg):
    """30 planned steps (12 examples, batch 4, 10 epochs) of 10 fake seconds each."""
    clock = FakeClock(10.0)

    def callback(record):
        clock.tick(record)
        if crash is not None:
            crash(record)

    trainer = make_trainer(base_dir, data, epochs=10, eval_every=10, save_every=2, max_minutes=max_minutes,
                           fit_schedule=True, checkpoint_dir=checkpoint_dir, callback=callback, **cfg)
    trainer.clock = clock
    return trainer


def fitted_lrs(steps: int, clock_at) -> list[float]:
    """The rates of a time-bound run made so at step 6: 30 planned steps, warmup 2, 120 s less a 4 s
    validation pass (0.4 x 10 s x 1 valid micro-batch); `clock_at(s)`: its clock at step index s."""
    return ([lr_at(s, 5e-3, 2, 30) for s in range(6)]
            + [cosine(5e-3, max(progress_at(s, 2, 30), clock_at(s) / 116)) for s in range(6, steps)])


def test_fit_schedule_ends_the_cosine_at_the_budget(tiny_gemma_dir, data):
    # 2 minutes for 30 steps of 10 s: judged after 4 timed steps, the plan would overrun, so from
    # step 7 on the cosine follows the clock, and the run stops when 116 of 120 s have passed
    summary = fitted_trainer(tiny_gemma_dir, data, max_minutes=2).fit()
    assert summary["fitted_to_budget"] and summary["stopped_at_budget"]
    assert summary["steps"] == 13 and summary["total_steps"] == 30
    lrs = [r["lr"] for r in summary["history"]]
    assert lrs == pytest.approx(fitted_lrs(13, lambda s: 10 * s), rel=1e-12)
    assert lrs[-1] == pytest.approx(0.1 * 5e-3)  # ended at the floor
    assert [r["step"] for r in summary["history"] if "valid_loss" in r] == [10, 13]
    assert summary["kept"] == "best" and summary["best_step"] in (10, 13)

    cut = make_trainer(tiny_gemma_dir, data, epochs=10, eval_every=10, max_minutes=2)
    cut.clock = clock = FakeClock(10.0)
    cut.callback = clock.tick
    stopped = cut.fit()  # without fit_schedule the budget cuts the cosine at a high rate
    assert stopped["stopped_at_budget"] and not stopped["fitted_to_budget"] and stopped["steps"] == 13
    assert stopped["history"][-1]["lr"] > 0.5 * 5e-3


def test_fit_schedule_leaves_a_plan_that_fits_alone(tiny_gemma_dir, data):
    fitted = fitted_trainer(tiny_gemma_dir, data, max_minutes=60).fit()
    plain = make_trainer(tiny_gemma_dir, data, epochs=10, eval_every=10, save_every=2).fit()
    assert not fitted["fitted_to_budget"] and fitted["steps"] == fitted["total_steps"] == 30
    assert [r["lr"] for r in fitted["history"]] == [r["lr"] for r in plain["history"]]
    for a, b in zip(fitted["history"], plain["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)


def test_a_fitted_run_resumes_on_the_budget_clock(tiny_gemma_dir, data, tmp_path):
    straight = fitted_trainer(tiny_gemma_dir, data, max_minutes=2, checkpoint_dir=tmp_path / "a").fit()
    with pytest.raises(Crash):
        fitted_trainer(tiny_gemma_dir, data, max_minutes=2, checkpoint_dir=tmp_path / "b", crash=crash_at(9)).fit()
    resumed = fitted_trainer(tiny_gemma_dir, data, max_minutes=2, checkpoint_dir=tmp_path / "b", resume=True).fit()
    assert resumed["fitted_to_budget"] and resumed["stopped_at_budget"]  # time-bound comes from the checkpoint
    # the checkpoint at step 8 was written at 70 s (before that step's 10 s ended): the resumed run's
    # clock continues from there, so it runs one step more than the straight one and ends at the floor
    assert resumed["steps"] == 14 and resumed["history"][-1]["lr"] == pytest.approx(0.1 * 5e-3)
    assert [r["lr"] for r in resumed["history"]] == pytest.approx(
        fitted_lrs(14, lambda s: 10 * s if s < 8 else 70 + 10 * (s - 8)), rel=1e-12)
    for a, b in zip(straight["history"][:8], resumed["history"][:8]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5


OFF_UNLESS_ASKED = {"packing": False, "pack_tokens": 0, "min_steps": 0, "max_minutes": 0, "fit_schedule": False,
                    "shard_optimizer": False, "ema": 0.0}


def test_train_config_defaults_are_params_yaml_values_or_off():
    """A TrainConfig built by hand trains like the shipped params.yaml, except the features that stay
    off unless asked for; the stage's own config comes from params.yaml whole."""
    shipped = load_params(ROOT / "params.yaml")["train"]
    defaults = TrainConfig()
    for name in TrainConfig.__dataclass_fields__:
        if name in OFF_UNLESS_ASKED:
            assert getattr(defaults, name) == OFF_UNLESS_ASKED[name], name
        elif name in shipped:
            assert getattr(defaults, name) == shipped[name], f"TrainConfig.{name} contradicts params.yaml"
    from_params = TrainConfig.from_params(shipped, seed=7)
    assert all(getattr(from_params, k) == shipped[k] for k in TrainConfig.__dataclass_fields__ if k in shipped)
    assert from_params.seed == 7
