"""The train stage end to end: data + base model + params -> models/adapter/ and dvclive logs.

Under torchrun (distributed.py) every process loads the data and the model and trains its share of
each step; only the main process (rank 0) clears and writes checkpoints, logs to dvclive and writes
models/adapter/."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from calltune.errors import InputError
from calltune.io import sha256_file
from calltune.train.callbacks import live_callbacks
from calltune.train.session import TrainPaths, data_stats, load_data, training_summary, warn, write_outputs

# train params that do not change the math (a checkpoint made with other values resumes): resume,
# compile and max_minutes (a run stopped by its time budget resumes with a larger one), and how many
# processes train and whether they shard the optimizer state (the plan does not depend on them).
NOT_FINGERPRINTED = ("resume", "compile", "max_minutes", "distributed", "shard_optimizer")


def fingerprint(params: dict, paths: TrainPaths) -> str:
    """What a checkpoint must match to be resumed: the train params (but NOT_FINGERPRINTED), seed,
    format and data."""
    train = {k: v for k, v in params["train"].items() if k not in NOT_FINGERPRINTED}
    blob = json.dumps([train, params["base"]["seed"], params["model"]["format"],
                       sha256_file(paths.train), sha256_file(paths.valid) if paths.valid.is_file() else None]
                      + ([_start_weights(train["init_adapter"])] if train.get("init_adapter") else []),
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _start_weights(adapter_dir) -> str | None:
    """The sha256 of a warm start's weights (train.init_adapter), so a resume checks them too."""
    weights = Path(adapter_dir) / "adapter_model.safetensors"
    return sha256_file(weights) if weights.is_file() else None


def run_training(params: dict, paths: TrainPaths = TrainPaths(), progress: bool = True) -> dict:
    """Train per params.train; write the adapter (or full model) and a summary. Returns the summary."""
    from calltune.train import distributed
    from calltune.train.device import resolve_backend

    if resolve_backend(params["train"]["backend"]) == "mlx":
        from calltune.train.mlx_backend import run_mlx

        setting = params["train"].get("distributed", "auto")
        if (distributed.requested_processes(setting) or 1) > 1 or distributed.resolve(setting).enabled:
            raise InputError("the mlx backend trains in one process; set train.backend: torch to use several",
                             field="train.distributed")
        return run_mlx(params, paths, progress=progress)
    return run_torch(params, paths, progress=progress)


def run_torch(params: dict, paths: TrainPaths, progress: bool = True, log: bool = True) -> dict:
    """`log`: dvclive logging (False where dvclive is not installed, e.g. a bare GPU machine).
    Under torchrun: data parallel (distributed.py); the main process writes every output."""
    from calltune.train import distributed

    dist = distributed.resolve(params["train"].get("distributed", "auto"))
    try:
        return _run_torch(params, paths, dist, progress, log)
    finally:
        distributed.stop(dist)


def warn_idle(dist, grad_accum: int) -> None:
    if dist.enabled and dist.is_main and grad_accum % dist.world_size:
        warn(f"train.grad_accum={grad_accum} is not a multiple of the {dist.world_size} processes: some "
             "process idles part of every step (the result is the same; set grad_accum to a multiple)")


def _run_torch(params: dict, paths: TrainPaths, dist, progress: bool, log: bool) -> dict:
    import torch

    from calltune.train import distributed
    from calltune.train.device import resolve_device, resolve_dtype, seed_everything, use_compile
    from calltune.train.lora import init_from_adapter, load_base_model, make_trainable, save_trained
    from calltune.train.loss import compile_layers
    from calltune.train.trainer import Trainer, TrainConfig

    tp, seed = params["train"], params["base"]["seed"]
    started = time.perf_counter()
    device = distributed.process_device(resolve_device(tp["device"]), dist)
    distributed.start(dist, device)
    dtype = resolve_dtype(tp["dtype"], device)
    seed_everything(seed)
    tokenizer, fmt, train, valid, cuts = load_data(params, paths, quiet=not dist.is_main)
    warn_idle(dist, tp["grad_accum"])
    model = load_base_model(paths.base, tp["method"], dtype, device)
    model = make_trainable(model, tp["method"], tp["lora"], tp["gradient_checkpointing"])
    if tp.get("init_adapter"):
        init_from_adapter(model, tp["init_adapter"], tp["method"], tp["lora"])
    compiled = use_compile(tp["compile"], device) and compile_layers(model) > 0
    if dist.is_main:
        if not tp["resume"]:
            shutil.rmtree(paths.checkpoints, ignore_errors=True)
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
    dist.barrier()  # no process looks for a checkpoint before the main one has cleared old ones
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with live_callbacks(paths.live, tp["resume"], enabled=log and dist.is_main) as callbacks:
        trainer = Trainer(model, train, valid, TrainConfig.from_params(tp, seed), device, pad_id,
                          autocast=dtype if tp["method"] == "full" and dtype != torch.float32 else None,
                          checkpoint_dir=paths.checkpoints, fingerprint=fingerprint(params, paths),
                          callbacks=callbacks, progress=progress, dist=dist)
        result = trainer.fit()
    summary = training_summary(
        backend="torch", device=device.type, dtype=str(dtype).removeprefix("torch."),
        method=tp["method"], format=fmt.name, seed=seed, compiled=compiled, params=tp,
        processes=dist.world_size, shard_optimizer=trainer.cfg.shard_optimizer and dist.enabled,
        trainable_parameters=sum(p.numel() for p in trainer.params),
        data={"train": data_stats(train), "valid": data_stats(valid)}, cut=cuts,
        **result, wall_s=round(time.perf_counter() - started, 1),
    )
    if dist.is_main:
        write_outputs(paths.out, lambda tmp: save_trained(model, tmp, tp["method"]), summary)
    dist.barrier()  # every process returns once the outputs are in place
    return summary
