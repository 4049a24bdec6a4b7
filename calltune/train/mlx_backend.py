"""LoRA training with MLX (mlx-lm's tuner): the default on Apple Silicon, mlx[cpu] on Linux.

Same inputs as the torch backend: models/base/ (loaded by mlx-lm), the same tokenization and
completion mask (calltune.train.datasets), the same length-grouped batch order and the same lr
schedule. mlx-lm's `train` runs the loop; we give it our batches, a loss that applies the LM
head only at target positions, and MlxReports, which hands its reports to the callbacks both
backends share (callbacks.py: dvclive). The summary has the torch backend's keys (session.TrainingSummary).

Output form: the adapter is converted to PEFT's layout, so the fuse stage reads one format
whatever the backend: adapter_model.safetensors with keys
`base_model.model.<module path>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r] (mlx-lm keeps
lora_a [in, r] and lora_b [r, out]: transposed) and adapter_config.json from peft.LoraConfig with
lora_alpha / r equal to mlx-lm's `scale`.

On Linux the mlx[cpu] wheel's own BLAS is slow: preload OpenBLAS for ~12x
(`apt-get install libopenblas0-pthread`, `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0`);
train in float32 there (bf16 matmuls skip BLAS).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from calltune.errors import InputError
from calltune.model_dir import MLX_WEIGHTS, PEFT_WEIGHTS
from calltune.train.callbacks import TrainingCallback, live_callbacks
from calltune.train.datasets import length_grouped_batches
from calltune.train.ema import check_decay
from calltune.train.length import RunLength, ceil_div, run_length
from calltune.train.schedule import FLOOR
from calltune.train.session import data_stats, load_data, training_summary, warn, write_outputs

PAD_MULTIPLE = 32  # pad widths and target counts so mx.compile sees few distinct shapes
OPENBLAS = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"


def check_supported(tp: dict) -> None:
    """The MLX backend trains LoRA adapters; the rest of the knobs belong to the torch backend.
    Packed rows are torch-only: packing true or padded is refused, auto means false here."""
    unsupported = {
        "method": tp["method"] != "lora", "resume": tp["resume"], "patience": tp["patience"] > 0,
        "device": tp["device"] not in ("auto", "cpu", "mps"), "packing": tp.get("packing", False) in (True, "padded"),
        "init_adapter": bool(tp.get("init_adapter")), "embed_noise": tp.get("embed_noise", 0) > 0,
    }
    for key, bad in unsupported.items():
        if bad:
            raise InputError(f"train.backend mlx does not support this {key} ({tp[key]!r}); use backend torch",
                             field=f"train.{key}")


def mx_lr_schedule(peak: float, warmup: int, total: int):
    """calltune.train.schedule.lr_at in mx ops (the optimizer calls it inside mx.compile)."""
    import mlx.core as mx

    span = max(1, total - warmup - 1)

    def schedule(step):
        warm = peak * (step + 1) / (warmup + 1)
        progress = mx.minimum((step - warmup) / span, 1.0)
        cosine = peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + mx.cos(math.pi * progress)))
        return mx.where(step < warmup, warm, cosine)

    return schedule


def _round_up(n: int, multiple: int = PAD_MULTIPLE) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def mlx_batch(examples, pad_id: int):
    """(ids [B, W], rows [N], labels [N], weights [N]): `rows` index the flattened hidden states
    whose next token is a target; padded rows point at 0 with weight 0."""
    import mlx.core as mx

    width = _round_up(max(len(ex) for ex in examples))
    ids = np.full((len(examples), width), pad_id, dtype=np.int32)
    rows, labels = [], []
    for b, ex in enumerate(examples):
        ids[b, : len(ex)] = ex.input_ids
        for t in range(1, len(ex)):
            if ex.targets[t]:
                rows.append(b * width + t - 1)
                labels.append(ex.input_ids[t])
    n = _round_up(len(rows))
    weights = np.zeros(n, dtype=np.float32)
    weights[: len(rows)] = 1.0
    pad = n - len(rows)
    return (mx.array(ids), mx.array(np.array(rows + [0] * pad, dtype=np.int32)),
            mx.array(np.array(labels + [0] * pad, dtype=np.int32)), mx.array(weights))


def batch_iterator(seed: int, pad_id: int):
    """An mlx-lm `iterate_batches` over our examples, in the torch backend's order."""

    def iterate_batches(dataset, batch_size, max_seq_length, loop=False, seed_=None, comm_group=None, **_):
        epoch = 0
        while True:
            for indices in length_grouped_batches(dataset, batch_size, seed, epoch):
                yield mlx_batch([dataset[i] for i in indices], pad_id)
            epoch += 1
            if not loop:
                return

    return iterate_batches


def output_head(model):
    if "lm_head" in model:
        return model.lm_head
    return model.model.embed_tokens.as_linear


def target_head_loss(model, ids, rows, labels, weights):
    """Cross entropy at target positions only; the head sees N rows instead of B x W."""
    import mlx.core as mx
    import mlx.nn as nn

    hidden = model.model(ids)
    picked = mx.take(hidden.reshape(-1, hidden.shape[-1]), rows, axis=0)
    logits = output_head(model)(picked).astype(mx.float32)
    if cap := getattr(model.args, "final_logit_softcapping", None):
        logits = mx.tanh(logits / cap) * cap
    ntoks = weights.sum()
    return (nn.losses.cross_entropy(logits, labels) * weights).sum() / ntoks, ntoks


def lora_keys(model, targets: list[str]) -> list[str]:
    """Module paths inside a decoder layer that LoRA wraps (leaf names, or every Linear)."""
    import mlx.nn as nn

    linear = [path for path, mod in model.layers[0].named_modules() if isinstance(mod, nn.Linear)]
    keys = linear if targets == ["all-linear"] else [p for p in linear if p.rsplit(".", 1)[-1] in targets]
    if not keys:
        leaves = sorted({p.rsplit(".", 1)[-1] for p in linear})
        raise InputError(f"no module matches {targets}; linear modules here: {', '.join(leaves)} (or all-linear)",
                         field="train.lora.target_modules")
    return keys


def add_lora(model, lora: dict) -> list[str]:
    from mlx_lm.tuner.utils import linear_to_lora_layers

    keys = lora_keys(model, list(lora["target_modules"]))
    model.freeze()
    linear_to_lora_layers(model, len(model.layers), {"rank": lora["rank"], "scale": lora["alpha"] / lora["rank"],
                                                     "dropout": lora["dropout"], "keys": keys})
    return sorted({k.rsplit(".", 1)[-1] for k in keys})


def peft_tensors(model) -> dict[str, np.ndarray]:
    """mlx-lm LoRA weights in PEFT's names and layout."""
    import mlx.core as mx
    from mlx_lm.tuner.lora import LoRALinear

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            out[f"base_model.model.{name}.lora_A.weight"] = np.array(module.lora_a.T.astype(mx.float32))
            out[f"base_model.model.{name}.lora_B.weight"] = np.array(module.lora_b.T.astype(mx.float32))
    return out


def save_peft_adapter(model, out_dir: Path, lora: dict, modules: list[str], base: str) -> list[str]:
    from peft import LoraConfig
    from safetensors.numpy import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in peft_tensors(model).items()},
              str(out_dir / PEFT_WEIGHTS), metadata={"format": "pt"})
    LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=modules,
               bias="none", task_type="CAUSAL_LM", base_model_name_or_path=base).save_pretrained(str(out_dir))
    return sorted(p.name for p in out_dir.iterdir())


class MlxAverage:
    """calltune.train.ema's moving average (train.ema) over an mlx model's trainable parameters:
    a = d * a + (1 - d) * w after every optimizer step, in float32. mlx-lm's loop keeps the last
    weights and validates the raw ones; the run ends with the average instead (`apply`)."""

    def __init__(self, model, decay: float):
        import mlx.core as mx
        from mlx.utils import tree_flatten

        check_decay(decay)
        self.model, self.decay = model, decay
        self.average = {k: v.astype(mx.float32) for k, v in tree_flatten(model.trainable_parameters())}

    def update(self) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        for k, v in tree_flatten(self.model.trainable_parameters()):
            self.average[k] = self.decay * self.average[k] + (1 - self.decay) * v.astype(mx.float32)
        mx.eval(list(self.average.values()))

    def apply(self) -> None:
        from mlx.utils import tree_flatten

        dtypes = {k: v.dtype for k, v in tree_flatten(self.model.trainable_parameters())}
        self.model.load_weights([(k, a.astype(dtypes[k])) for k, a in self.average.items()], strict=False)


class OutOfTime(Exception):
    """Raised from the callback after an optimizer step once train.max_minutes has passed."""


class MlxReports:
    """mlx-lm's training callback: its reports, per iteration (micro-batch), turned into calltune's
    (callbacks.py; step = the optimizer step the iteration belongs to) and handed to `callbacks`. Keeps
    them as the summary's history (a valid loss joins the latest record of its step) and the untrained
    model's valid loss (mlx-lm measures it first, at iteration 0); updates `average` (MlxAverage, or
    None) after every optimizer step; stops the loop (OutOfTime) after the first optimizer step past
    `deadline` (time.monotonic(), None = none)."""

    def __init__(self, callbacks: list[TrainingCallback], grad_accum: int, deadline: float | None = None,
                 average: MlxAverage | None = None):
        self.callbacks, self.grad_accum, self.history = callbacks, grad_accum, []
        self.initial_valid_loss = None
        self.deadline, self.average = deadline, average

    def _step(self, iteration: int) -> int:
        return math.ceil(iteration / self.grad_accum)

    def on_train_loss_report(self, info: dict) -> None:
        record = {"step": self._step(info["iteration"]), "train_loss": info["train_loss"],
                  "lr": info["learning_rate"], "tokens_per_s": info["tokens_per_second"]}
        self.history.append(record)
        for callback in self.callbacks:
            callback.on_train_loss_report(dict(record))
        step_done = info["iteration"] % self.grad_accum == 0  # the weights were just updated
        if step_done and self.average is not None:
            self.average.update()
        if step_done and self.deadline is not None and time.monotonic() >= self.deadline:
            raise OutOfTime

    def on_val_loss_report(self, info: dict) -> None:
        if not math.isfinite(info["val_loss"]):
            return
        if info["iteration"] == 0:  # mlx-lm measures the untrained model first
            self.initial_valid_loss = info["val_loss"]
            return
        report = {"step": self._step(info["iteration"]), "valid_loss": info["val_loss"]}
        if self.history and self.history[-1]["step"] == report["step"] and "valid_loss" not in self.history[-1]:
            self.history[-1]["valid_loss"] = report["valid_loss"]
        else:
            self.history.append(dict(report))
        for callback in self.callbacks:
            callback.on_val_loss_report(report)

    def loop_summary(self, length: RunLength, examples: int, batches: int, grad_accum: int, max_minutes: float,
                     stopped_at_budget: bool, train_s: float) -> dict:
        """The loop's part of the summary (session.LOOP_KEYS), as the torch Trainer writes it; `batches`:
        micro-batches of `examples` per epoch."""
        losses = [r["train_loss"] for r in self.history if "train_loss" in r]
        valid = [(r["valid_loss"], r["step"]) for r in self.history if "valid_loss" in r]
        speeds = [r["tokens_per_s"] for r in self.history if "tokens_per_s" in r]
        steps = max(r["step"] for r in self.history) if stopped_at_budget else length.total_steps
        per_epoch = ceil_div(batches, grad_accum)
        return {
            "steps": steps, "total_steps": length.total_steps, "epochs": steps / max(1, per_epoch),
            "steps_per_epoch": per_epoch, "planned_epochs": length.epochs,
            "extended_by_min_steps": length.extended, "eval_every": length.eval_every,
            "packing": False, "examples_per_micro_batch": examples / max(1, batches),
            "stopped_early": False, "stopped_at_budget": stopped_at_budget,
            "max_minutes": max_minutes, "train_s": round(train_s, 1), "fitted_to_budget": False,
            "best_step": min(valid)[1] if valid else None, "best_valid_loss": min(valid)[0] if valid else None,
            "initial_valid_loss": self.initial_valid_loss,
            "first_train_loss": losses[0], "last_train_loss": losses[-1],
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
            "kept": "last", "history": self.history,
        }


def mlx_dtype(requested: str):
    """auto: bf16 on Apple GPUs, fp32 on CPU (mlx's CPU bf16 matmuls bypass BLAS)."""
    import mlx.core as mx

    if requested == "auto":
        return mx.bfloat16 if mx.metal.is_available() else mx.float32
    return {"bfloat16": mx.bfloat16, "float32": mx.float32}[requested]


def warn_slow_blas() -> None:
    if platform.system() == "Linux" and OPENBLAS not in os.environ.get("LD_PRELOAD", ""):
        warn(f"mlx on Linux CPU is ~12x faster with LD_PRELOAD={OPENBLAS} (package libopenblas0-pthread)")


def epoch_batches(train_set, tp: dict, seed: int) -> int:
    """Micro-batches in an epoch (the same count every epoch)."""
    return len(length_grouped_batches(train_set, tp["batch_size"], seed, 0))


def train_length(train_set, tp: dict, seed: int) -> RunLength:
    """The torch backend's run length (length.run_length) for these batches."""
    per_epoch = ceil_div(epoch_batches(train_set, tp, seed), tp["grad_accum"])
    return run_length(per_epoch, tp["epochs"], tp.get("min_steps", 0), tp["max_steps"], tp["eval_every"])


def train_steps(train_set, tp: dict, seed: int) -> int:
    return train_length(train_set, tp, seed).total_steps


def run_mlx(params: dict, paths, progress: bool = True, callbacks: list | None = None) -> dict:
    """`callbacks`: these instead of the run's own dvclive log (a soup's runs share one)."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.utils import load_model

    tp, seed = params["train"], params["base"]["seed"]
    check_supported(tp)
    warn_slow_blas()
    started = time.perf_counter()
    mx.random.seed(seed)
    tokenizer, fmt, train_set, valid_set, cuts = load_data(params, paths)
    model, _ = load_model(Path(paths.base))
    dtype = mlx_dtype(tp["dtype"])
    model.set_dtype(dtype)
    modules = add_lora(model, tp["lora"])
    length = train_length(train_set, tp, seed)
    steps = length.total_steps
    optimizer = optim.AdamW(learning_rate=mx_lr_schedule(tp["lr"], tp["warmup_steps"], steps),
                            weight_decay=tp["weight_decay"])
    accum = tp["grad_accum"]
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    args = TrainingArgs(batch_size=tp["batch_size"], iters=steps * accum, val_batches=-1, steps_per_report=1,
                        steps_per_eval=length.eval_every * accum, steps_per_save=tp["save_every"] * accum,
                        max_seq_length=tp["max_seq_len"], grad_checkpoint=tp["gradient_checkpointing"],
                        adapter_file=str(paths.checkpoints / MLX_WEIGHTS), grad_accumulation_steps=accum)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    budget = tp.get("max_minutes", 0)
    given = contextlib.nullcontext(callbacks) if callbacks is not None else None
    with given or live_callbacks(paths.live, False) as callbacks:
        average = MlxAverage(model, tp["ema"]) if tp.get("ema", 0) > 0 else None
        reports = MlxReports(callbacks, accum, time.monotonic() + 60 * budget if budget > 0 else None, average)
        loop_started = time.perf_counter()
        try:
            train(model, optimizer, train_set, valid_set, args, loss=target_head_loss,
                  iterate_batches=batch_iterator(seed, pad_id), training_callback=reports)
            stopped_at_budget = False
        except OutOfTime:
            stopped_at_budget = True
        if average is not None:
            average.apply()
        result = reports.loop_summary(length, len(train_set), epoch_batches(train_set, tp, seed), accum, budget,
                                      stopped_at_budget, time.perf_counter() - loop_started)
        for callback in callbacks:
            callback.on_train_end(result)
    summary = training_summary(
        backend="mlx", device="gpu" if mx.metal.is_available() else "cpu", dtype=str(dtype).split(".")[-1],
        method="lora", format=fmt.name, seed=seed, compiled=True, params=tp, processes=1, shard_optimizer=False,
        trainable_parameters=sum(v.size for _, v in tree_flatten(model.trainable_parameters())),
        data={"train": data_stats(train_set), "valid": data_stats(valid_set)}, cut=cuts,
        **result, wall_s=round(time.perf_counter() - started, 1),
    )
    write_outputs(paths.out, lambda tmp: save_peft_adapter(model, tmp, tp["lora"], modules, paths.base.as_posix()),
                  summary)
    return summary
