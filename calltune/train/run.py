"""The train stage end to end: data + base model + params -> models/adapter/ and dvclive logs.

Under torchrun (distributed.py) every process loads the data and the model and trains its share of
each step; only the main process (rank 0) clears and writes checkpoints, logs to dvclive and writes
models/adapter/.

train.soup: N > 1 trains N runs that differ only in their seed (base.seed, base.seed + 1, ...), each
as long as one run (max_minutes applies to each: N times the time), and writes their uniform soup
(soup.py: one LoRA adapter whose update is the mean of theirs) as models/adapter/. Each run's adapter
is kept under models/checkpoints/members/, named for its fingerprint, so a resume skips the runs that
finished and continues the one that did not from its own checkpoints (models/checkpoints/member-<i>/)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from calltune.errors import InputError
from calltune.io import read_json, sha256_file
from calltune.model_dir import PEFT_WEIGHTS
from calltune.train.callbacks import live_callbacks
from calltune.train.session import (SUMMARY_FILE, TrainPaths, data_stats, load_data, training_summary, warn,
                                    write_outputs)

# train params that do not change the math (a checkpoint made with other values resumes): resume,
# compile and max_minutes (a run stopped by its time budget resumes with a larger one), and how many
# processes train and whether they shard the optimizer state (the plan does not depend on them).
# A soup's member is fingerprinted as the run it is (its seed, soup left out): the same run in a soup
# of another size resumes.
NOT_FINGERPRINTED = ("resume", "compile", "max_minutes", "distributed", "shard_optimizer", "soup")
MEMBERS = "members"  # under the checkpoints folder: the finished runs of a soup, <i>-<fingerprint>


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
    weights = Path(adapter_dir) / PEFT_WEIGHTS
    return sha256_file(weights) if weights.is_file() else None


def run_training(params: dict, paths: TrainPaths = TrainPaths(), progress: bool = True) -> dict:
    """Train per params.train; write the adapter (or full model) and a summary. Returns the summary."""
    if params["train"].get("soup", 1) > 1:
        return run_soup(params, paths, progress)
    return run_one(params, paths, progress)


def run_one(params: dict, paths: TrainPaths, progress: bool = True, callbacks: list | None = None) -> dict:
    """One run on the backend train.backend picks; `callbacks` instead of the run's own dvclive log."""
    from calltune.train import distributed
    from calltune.train.device import resolve_backend

    if resolve_backend(params["train"]["backend"]) == "mlx":
        from calltune.train.mlx_backend import run_mlx

        setting = params["train"].get("distributed", "auto")
        if (distributed.requested_processes(setting) or 1) > 1 or distributed.resolve(setting).enabled:
            raise InputError("the mlx backend trains in one process; set train.backend: torch to use several",
                             field="train.distributed")
        return run_mlx(params, paths, progress=progress, callbacks=callbacks)
    return run_torch(params, paths, progress=progress, callbacks=callbacks)


def member_params(params: dict, i: int) -> dict:
    """The params of a soup's run i: seed base.seed + i, soup 1; the rest (max_minutes too) as given."""
    return {**params, "base": {**params["base"], "seed": params["base"]["seed"] + i},
            "train": {**params["train"], "soup": 1}}


def run_soup(params: dict, paths: TrainPaths, progress: bool = True) -> dict:
    """train.soup runs (module docstring), then their soup in paths.out with a summary of them all."""
    from calltune.train import distributed
    from calltune.train.callbacks import LiveLogger, open_live
    from calltune.train.soup import save_soup

    tp = params["train"]
    n, method = tp["soup"], tp["method"]
    if method not in ("lora", "qlora"):
        raise InputError(f"a soup averages LoRA adapters; train.method {method} makes none (use lora or qlora)",
                         field="train.soup")
    started = time.perf_counter()
    dist = distributed.resolve(tp.get("distributed", "auto"))
    main = dist.is_main
    members = paths.checkpoints / MEMBERS
    if main and not tp["resume"]:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
    summaries, dirs = [], []
    with contextlib.ExitStack() as stack:
        if dist.enabled:  # one process group for all the runs: gloo cannot rendezvous twice (distributed.joined)
            from calltune.train.device import resolve_device

            distributed.start(dist, distributed.process_device(resolve_device(tp["device"]), dist))
            stack.callback(distributed.stop, dist)
        live = stack.enter_context(open_live(paths.live, tp["resume"])) if main else None
        for i in range(n):
            run = member_params(params, i)
            done = members / f"{i}-{fingerprint(run, paths)[:16]}"
            if tp["resume"] and (done / SUMMARY_FILE).is_file():
                print(f"soup run {i + 1} of {n} (seed {run['base']['seed']}) finished before: {done}",
                      file=sys.stderr, flush=True)
                summaries.append(read_json(done / SUMMARY_FILE))
            else:
                print(f"soup run {i + 1} of {n}: seed {run['base']['seed']}", file=sys.stderr, flush=True)
                here = TrainPaths(train=paths.train, valid=paths.valid, base=paths.base, out=done,
                                  checkpoints=paths.checkpoints / f"member-{i}", live=paths.live)
                callbacks = [LiveLogger(live, f"member-{i}")] if live is not None else []
                summaries.append(run_one(run, here, progress, callbacks))
            dirs.append(done)
    if not main:
        return summaries[-1]  # the main process writes the soup
    for stale in members.glob("*-*"):  # runs of other params (or a larger soup) left by earlier resumes
        if stale not in dirs:
            shutil.rmtree(stale, ignore_errors=True)
    first = summaries[0]
    summary = {"soup": n, "seeds": [s["seed"] for s in summaries], "backend": first["backend"],
               "device": first["device"], "dtype": first["dtype"], "method": method, "format": first["format"],
               "params": tp, "processes": first["processes"], "members": summaries,
               "wall_s": round(time.perf_counter() - started, 1)}
    write_outputs(paths.out, lambda tmp: save_soup(dirs, tmp), summary)
    return summary


def run_torch(params: dict, paths: TrainPaths, progress: bool = True, log: bool = True,
              callbacks: list | None = None) -> dict:
    """`log`: dvclive logging (False where dvclive is not installed, e.g. a bare GPU machine);
    `callbacks`: these instead of the run's own dvclive log (a soup's runs share one).
    Under torchrun: data parallel (distributed.py); the main process writes every output."""
    from calltune.train import distributed

    dist = distributed.resolve(params["train"].get("distributed", "auto"))
    owner = not distributed.joined()  # a group joined before (by a soup) is left to whoever joined it
    try:
        return _run_torch(params, paths, dist, progress, log, callbacks)
    finally:
        if owner:
            distributed.stop(dist)


def warn_idle(dist, grad_accum: int) -> None:
    if dist.enabled and dist.is_main and grad_accum % dist.world_size:
        warn(f"train.grad_accum={grad_accum} is not a multiple of the {dist.world_size} processes: some "
             "process idles part of every step (the result is the same; set grad_accum to a multiple)")


def _run_torch(params: dict, paths: TrainPaths, dist, progress: bool, log: bool, given: list | None) -> dict:
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
    live = (contextlib.nullcontext(given if dist.is_main else []) if given is not None
            else live_callbacks(paths.live, tp["resume"], enabled=log and dist.is_main))
    with live as callbacks:
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
