"""The training loop: AdamW, warmup + cosine, grad accumulation and clipping, eval, early stopping
with keep-best, a wall-clock budget, reports to callbacks (callbacks.py: dvclive), a progress bar,
checkpoints and exact resume. With train.ema, validation, keep-best and the result use a moving
average of the weights (ema.py); training steps the raw weights as without it.

Batches: prompt-grouped and padded (datasets.length_grouped_batches), or packed across groups into
one row each (packing.py) when train.packing says so. Run length: length.run_length (epochs
lengthened to min_steps, capped by max_steps). With a wall-clock budget (max_minutes) and
fit_schedule, a run that would overrun its budget at the pace of its recent steps becomes time-bound:
its progress through the cosine is then the larger of its share of the steps and its share of the
budget, and it stops when the budget (less a final validation pass) is spent, so it ends at the
floor rate instead of being cut while the rate is still high. Step times on a CPU vary (the first
steps of new shapes are slow), so the clock, not a one-off step count, decides.

Data parallel (distributed.py): the plan is the same for any number of processes; each process runs
its share of every step's micro-batches, one all-reduce sums gradients and loss, every process takes
the same step; the main process alone writes checkpoints and reports. Dropout draws from a generator
seeded per (step, micro-batch), so it does not depend on which process runs a micro-batch."""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from calltune.errors import InputError
from calltune.train import checkpoint as ckpt
from calltune.train.callbacks import TrainingCallback
from calltune.train.datasets import TokenizedExample, collate, length_grouped_batches
from calltune.train.device import attention_kernels
from calltune.train.distributed import SINGLE, Dist, sharded_adamw
from calltune.train.ema import WeightAverage
from calltune.train.embed_noise import embedding_noise
from calltune.train.length import RunLength, projected_s, run_length
from calltune.train.lora import load_trainable_state, trainable_state
from calltune.train.loss import can_pack, completion_loss, lm_parts
from calltune.train.packing import pack_examples, packed_batches, resolve_packing
from calltune.train.schedule import cosine, lr_at, progress_at

FIT_AFTER = 4  # steps timed (in this process, after its first, which warms up) before the pace is judged
PACE_WINDOW = 8  # the pace: the median of this many most recent step times
EVAL_COST = 0.4  # a validation micro-batch (forward only) costs about this share of a training one
BUDGET_SHARE = 0.95  # a plan projected past this share of the budget makes the run time-bound


@dataclass(frozen=True)
class TrainConfig:
    """The loop's knobs. The stage builds it from params.yaml's `train` block (from_params); the
    defaults, for code that builds one by hand (tests, benchmarks), are params.yaml's values, except
    the features below the line, which stay off unless asked for (a test pins both)."""

    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    epochs: int = 2
    max_steps: int = 0
    batch_size: int = 16
    grad_accum: int = 1
    grad_clip: float = 1.0
    eval_every: int = 40
    save_every: int = 40
    patience: int = 0
    resume: bool = False
    seed: int = 0
    share_prefix: bool = True
    # ---- off unless asked for (params.yaml turns some on: packing auto, min_steps, max_minutes) ----
    packing: bool | str = False  # auto | true | padded | false (packing.resolve_packing)
    pack_tokens: int = 0  # most tokens in a packed row (0 = no limit)
    min_steps: int = 0  # lengthen the run to whole epochs with at least this many optimizer steps
    max_minutes: float = 0  # wall-clock budget of the loop (0 = none): stop, keep best, report
    fit_schedule: bool = False  # a run that would overrun max_minutes follows the budget's clock down the cosine
    shard_optimizer: bool = False  # with > 1 process: AdamW state sharded across them (ZeRO-1)
    embed_noise: float = 0.0  # U(-m, m) noise on the input embeddings while training (embed_noise.py; NEFTune)
    ema: float = 0.0  # decay of a moving average of the weights that is scored and kept (ema.py); 0 = off

    @classmethod
    def from_params(cls, train: dict, seed: int) -> "TrainConfig":
        keys = set(cls.__dataclass_fields__) - {"seed", "share_prefix"}
        return cls(seed=seed, **{k: train[k] for k in keys if k in train})


@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # position of the next optimizer step: epoch and chunk of micro-batches
    chunk: int = 0
    best_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the last improvement
    stopped_early: bool = False
    stopped_at_budget: bool = False  # max_minutes ran out before total_steps
    train_s: float = 0.0  # loop wall time so far, across resumes (what max_minutes bounds)
    time_bound: bool = False  # fit_schedule: the cosine follows the budget's clock (the plan would overrun)
    eval_reserve_s: float = 0.0  # time-bound: seconds kept for the final validation pass
    history: list = field(default_factory=list)


def make_optimizer(params, cfg: TrainConfig, device: torch.device, dist: Dist = SINGLE):
    """AdamW; the fused kernel on CUDA (one launch for all parameters); its state sharded across
    the processes when cfg.shard_optimizer and there are several."""
    if cfg.shard_optimizer and dist.enabled:
        return sharded_adamw(params, cfg.lr, cfg.weight_decay, device)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             **({"fused": True} if device.type == "cuda" else {}))


def micro_seed(seed: int, step: int, index: int) -> int:
    """The RNG seed of micro-batch `index` of optimizer step `step`: dropout masks are a function
    of the plan, the same whichever process runs the micro-batch, and after a resume."""
    return (seed * 1_000_003 + step) * 1_009 + index


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Trainer:
    """Trains `model` in place. `autocast` is the matmul dtype for fp32 master weights (full
    fine-tuning); adapters train on a base already held in the compute dtype. `callbacks` get the
    step's reports (callbacks.TrainingCallback); `callback(record)`, a plain hook, runs last in every
    step, after its checkpoint (tests crash a run or advance a fake clock there)."""

    def __init__(self, model, train_set: list[TokenizedExample], valid_set: list[TokenizedExample], cfg: TrainConfig,
                 device: torch.device, pad_id: int, *, autocast: torch.dtype | None = None,
                 checkpoint_dir: Path | None = None, fingerprint: str = "",
                 callbacks: Sequence[TrainingCallback] = (), progress: bool = True, callback=None,
                 dist: Dist = SINGLE):
        self.model, self.train_set, self.valid_set, self.cfg = model, train_set, valid_set, cfg
        self.device, self.pad_id, self.autocast = device, pad_id, autocast
        self.checkpoint_dir, self.fingerprint, self.callbacks = checkpoint_dir, fingerprint, list(callbacks)
        self.progress, self.callback, self.dist = progress and dist.is_main, callback, dist
        self.params = [p for p in model.parameters() if p.requires_grad]
        dist.broadcast_from_main(self.params)  # every process starts from the main one's weights
        self.optimizer = make_optimizer(self.params, cfg, device, dist)
        self.ema = (WeightAverage({n: p for n, p in model.named_parameters() if p.requires_grad}, cfg.ema)
                    if cfg.ema > 0 else None)
        self.state = LoopState()
        self.best: dict | None = None
        self.pack = resolve_packing(cfg.packing, train_set, cfg.batch_size, cfg.seed, can_pack(lm_parts(model).body))
        self.clock = time.monotonic  # what max_minutes is measured with (tests drive a fake one)
        self._started, self._before_s = self.clock(), 0.0

    # -- plan ------------------------------------------------------------------------------
    def micro_batches(self, examples: list[TokenizedExample], epoch: int) -> list[list[int]]:
        if self.pack:
            return packed_batches(examples, self.cfg.batch_size, self.cfg.pack_tokens, self.cfg.seed, epoch)
        return length_grouped_batches(examples, self.cfg.batch_size, self.cfg.seed, epoch)

    def epoch_plan(self, epoch: int) -> list[list[list[int]]]:
        """Optimizer steps of an epoch, each a list of micro-batches (lists of example indices)."""
        return chunks(self.micro_batches(self.train_set, epoch), self.cfg.grad_accum)

    @functools.cached_property
    def steps_per_epoch(self) -> int:
        return len(self.epoch_plan(0))  # the same every epoch: group sizes (or sorted lengths) fix the count

    @functools.cached_property
    def valid_plan(self) -> list[list[int]]:
        """The validation pass's micro-batches (the same at every pass)."""
        return self.micro_batches(self.valid_set, 0) if self.valid_set else []

    @functools.cached_property
    def length(self) -> RunLength:
        return run_length(self.steps_per_epoch, self.cfg.epochs, self.cfg.min_steps, self.cfg.max_steps,
                          self.cfg.eval_every)

    @property
    def total_steps(self) -> int:
        return self.length.total_steps

    # -- one step --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _kernels(self):
        """Autocast for fp32 master weights; the attention kernels that suit the device."""
        amp = (torch.autocast(device_type=self.device.type, dtype=self.autocast) if self.autocast is not None
               else contextlib.nullcontext())
        with amp, attention_kernels(self.device):
            yield

    def batch(self, indices: list[int], examples: list[TokenizedExample]):
        """A packed row, or a right-padded batch (also for a lone example: its plain causal
        attention needs no mask)."""
        chosen = [examples[i] for i in indices]
        if self.pack is True and len(chosen) > 1:
            return pack_examples(chosen).to(self.device)
        return collate(chosen, self.pad_id).to(self.device)

    def _count(self, micro_batches: list[list[int]]) -> tuple[int, int]:
        """(target tokens, tokens) of a step's micro-batches, from the plan: every process knows
        the whole step's counts without communicating."""
        chosen = [self.train_set[i] for ids in micro_batches for i in ids]
        return sum(ex.n_targets for ex in chosen), sum(len(ex) for ex in chosen)

    def _reduce_grads(self, loss_sum: torch.Tensor) -> None:
        """Sum gradients and the loss over the processes (a process with no micro-batch this step
        contributes zeros)."""
        if not self.dist.enabled:
            return
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.dist.sum_tensors([p.grad for p in self.params] + [loss_sum])

    def optimizer_step(self, micro_batches: list[list[int]]) -> dict:
        """Accumulate over micro-batches (loss normalised by all their target tokens), clip, step.
        With several processes each runs its share of the micro-batches (Dist.share)."""
        self.model.train()
        started = time.perf_counter()
        n_targets, n_tokens = self._count(micro_batches)
        mine = self.dist.share(list(enumerate(micro_batches)))
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        for index, ids in mine:
            batch = self.batch(ids, self.train_set)
            torch.manual_seed(micro_seed(self.cfg.seed, self.state.step, index))
            with self._kernels(), embedding_noise(self.model, self.cfg.embed_noise):
                loss, _ = completion_loss(self.model, batch, self.cfg.share_prefix)
            (loss / n_targets).backward()
            loss_sum += loss.detach().float()
        self._reduce_grads(loss_sum)
        grad_norm = (torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
                     if self.cfg.grad_clip > 0 else None)
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        record = {"step": self.state.step + 1, "train_loss": float(loss_sum) / n_targets, "lr": lr}
        elapsed = time.perf_counter() - started
        record["tokens_per_s"] = n_tokens / elapsed  # all processes' tokens: the run's throughput
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        return record

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean cross entropy per target token over the validation set."""
        if not self.valid_set:
            return None
        self.model.eval()
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss, target tokens
        for ids in self.dist.share(self.valid_plan):
            with self._kernels():
                loss, n = completion_loss(self.model, self.batch(ids, self.valid_set), self.cfg.share_prefix)
            sums += torch.tensor([float(loss), n], dtype=torch.float64, device=self.device)
        self.dist.sum_tensors([sums])
        return float(sums[0] / sums[1])

    def averaged(self):
        """Within the block the model holds the weights that are scored and kept: the moving average
        with train.ema, else the trained weights themselves."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    # -- bookkeeping -----------------------------------------------------------------------
    def _note_eval(self, valid_loss: float) -> None:
        s = self.state
        if s.best_loss is None or valid_loss < s.best_loss:
            s.best_loss, s.best_step, s.bad_evals = valid_loss, s.step, 0
            self.best = trainable_state(self.model)
        else:
            s.bad_evals += 1
            s.stopped_early = 0 < self.cfg.patience <= s.bad_evals

    def _report(self, record: dict) -> None:
        """The step's train report, then its validation report if it was evaluated."""
        train = {key: value for key, value in record.items() if key != "valid_loss"}
        for callback in self.callbacks:
            callback.on_train_loss_report(train)
            if "valid_loss" in record:
                callback.on_val_loss_report({"step": record["step"], "valid_loss": record["valid_loss"]})

    def _save(self) -> None:
        """The main process writes; a sharded optimizer first gathers its state there (collective)."""
        if hasattr(self.optimizer, "consolidate_state_dict"):
            self.optimizer.consolidate_state_dict(to=0)
        if not self.dist.is_main:
            return
        loop = {**asdict(self.state), "train_s": self._elapsed(), "fingerprint": self.fingerprint}
        ckpt.save_checkpoint(self.checkpoint_dir, self.state.step, trainable_state(self.model), self.best,
                             self.optimizer, loop, self.device,
                             average=self.ema.state() if self.ema is not None else None)

    def restore(self) -> bool:
        """Continue from the newest checkpoint, if any. Returns whether one was found."""
        found = self.checkpoint_dir and ckpt.latest_checkpoint(self.checkpoint_dir)
        if not found:
            return False
        saved = ckpt.load_checkpoint(found, self.fingerprint)
        load_trainable_state(self.model, saved["trainable"])
        ckpt.restore_optimizer(self.optimizer, saved["optimizer"], saved["loop"]["optimizer"])
        ckpt.restore_rng(saved["rng"], self.device)
        loop = {k: v for k, v in saved["loop"].items() if k in LoopState.__dataclass_fields__}
        self.state = LoopState(**loop)
        self.best = saved["best"]
        if self.ema is not None:
            if saved["average"] is None:
                raise InputError("checkpoint has no weight average (train.ema); delete it or set train.resume: false",
                                 path=found, field="train.resume")
            self.ema.load(saved["average"])
        return True

    # -- the loop --------------------------------------------------------------------------
    def _due(self, every: int) -> bool:
        return self.state.step % every == 0 or self.state.step == self.total_steps

    def _elapsed(self) -> float:
        """Loop seconds so far, this run's and those before a resume."""
        return self._before_s + self.clock() - self._started

    def _out_of_time(self) -> bool:
        """Past the budget (in any process: clocks differ, the decision must not)."""
        if self.cfg.max_minutes <= 0:
            return False
        if self.state.time_bound:
            return self._time_share() >= 1  # the same in every process (averaged)
        return self.dist.any(self._elapsed() >= 60 * self.cfg.max_minutes, self.device)

    def _lr(self) -> float:
        """The step's rate: the planned schedule, or for a time-bound run the cosine at the larger of
        the step's and the clock's progress (warmup stays by step)."""
        step, cfg = self.state.step, self.cfg
        if not self.state.time_bound or step < cfg.warmup_steps:
            return lr_at(step, cfg.lr, cfg.warmup_steps, self.total_steps)
        return cosine(cfg.lr, max(progress_at(step, cfg.warmup_steps, self.total_steps), self._time_share()))

    def _mean(self, value: float) -> float:
        """`value` averaged over the processes: a decision every process must take alike."""
        if not self.dist.enabled:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        self.dist.sum_tensors([total])
        return float(total) / self.dist.world_size

    def _time_share(self) -> float:
        """How much of the budget, less the final validation pass, has passed (time-bound runs)."""
        return self._mean(self._elapsed()) / max(1e-9, 60 * self.cfg.max_minutes - self.state.eval_reserve_s)

    def _judge_pace(self, durations: list[float]) -> None:
        """Make the run time-bound when, at the pace of its recent steps (the median, so a slow
        first use of a shape or a validation pass does not decide), its plan would overrun."""
        recent = sorted(durations[-PACE_WINDOW:])
        step_s = self._mean(recent[len(recent) // 2])
        eval_s = EVAL_COST * step_s * len(self.valid_plan) / self.cfg.grad_accum
        rest = projected_s(self.state.step, self.total_steps, step_s, eval_s, self.length.eval_every)
        if self._mean(self._elapsed()) + rest > BUDGET_SHARE * 60 * self.cfg.max_minutes:
            self.state.time_bound, self.state.eval_reserve_s = True, eval_s

    def _pace_judged(self, durations: list[float]) -> bool:
        return (not self.cfg.fit_schedule or self.cfg.max_minutes <= 0 or self.state.time_bound
                or len(durations) < FIT_AFTER)

    def _advance(self, epoch: int, chunk: int, n_chunks: int) -> None:
        self.state.step += 1
        self.state.epoch, self.state.chunk = (epoch + 1, 0) if chunk + 1 == n_chunks else (epoch, chunk + 1)

    def _stopped(self) -> bool:
        return self.state.step >= self.total_steps or self.state.stopped_early or self.state.stopped_at_budget

    def fit(self) -> dict:
        if self.cfg.resume:
            self.restore()
        self.state.stopped_at_budget = False  # a resumed run gets the budget it has now
        self._started, self._before_s = self.clock(), self.state.train_s
        last_end, steps_here = self._started, 0  # clock at the end of this process's latest step, and its steps
        durations: list[float] = []  # this process's step times, its first (warm-up) left out
        bar = tqdm(total=self.total_steps, initial=self.state.step, desc="train", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        while not self._stopped():
            epoch = self.state.epoch
            plan = self.epoch_plan(epoch)
            for chunk in range(self.state.chunk, len(plan)):
                record = self.optimizer_step(plan[chunk])
                self._advance(epoch, chunk, len(plan))
                if not self._pace_judged(durations):
                    self._judge_pace(durations)
                # out of time: evaluate now too, so keep-best can choose the weights trained last
                out_of_time = self._out_of_time() and self.state.step < self.total_steps
                if self._due(self.length.eval_every) or out_of_time:
                    with self.averaged():  # scored and, if best, kept
                        if (valid := self.evaluate()) is not None:
                            record["valid_loss"] = valid
                            self._note_eval(valid)
                self.state.stopped_at_budget = out_of_time
                self.state.history.append(record)
                self._report(record)
                if self.checkpoint_dir is not None and (self.state.step % self.cfg.save_every == 0 or out_of_time):
                    self._save()  # a run stopped by the budget resumes from here (raise max_minutes)
                bar.update(1)
                bar.set_postfix(loss=f"{record['train_loss']:.4f}", lr=f"{record['lr']:.2e}")
                if self.callback is not None:
                    self.callback(record)
                end, steps_here = self.clock(), steps_here + 1
                if steps_here > 1:
                    durations.append(end - last_end)
                last_end = end
                if self._stopped():
                    break
        bar.close()
        self.state.train_s = self._elapsed()
        if self.best is not None:
            load_trainable_state(self.model, self.best)
        elif self.ema is not None:
            self.ema.apply()
        result = self.summary()
        for callback in self.callbacks:
            callback.on_train_end(result)
        return result

    def summary(self) -> dict:
        """The loop's part of training_summary.json (session.LOOP_KEYS, in TrainingSummary's order)."""
        s, hist = self.state, self.state.history
        speeds = [r["tokens_per_s"] for r in hist]
        n_batches = len(self.micro_batches(self.train_set, 0))
        return {
            "steps": s.step, "total_steps": self.total_steps, "epochs": s.step / max(1, self.steps_per_epoch),
            "steps_per_epoch": self.steps_per_epoch, "planned_epochs": self.length.epochs,
            "extended_by_min_steps": self.length.extended, "eval_every": self.length.eval_every,
            "packing": self.pack, "examples_per_micro_batch": len(self.train_set) / max(1, n_batches),
            "stopped_early": s.stopped_early, "stopped_at_budget": s.stopped_at_budget,
            "max_minutes": self.cfg.max_minutes, "train_s": round(s.train_s, 1),
            "fitted_to_budget": s.time_bound,
            "best_step": s.best_step, "best_valid_loss": s.best_loss,
            "initial_valid_loss": None,  # the untrained model is not scored
            "first_train_loss": hist[0]["train_loss"] if hist else None,
            "last_train_loss": hist[-1]["train_loss"] if hist else None,
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
            "kept": "best" if self.best is not None else "last", "history": hist,
        }
