"""Checkpoints for exact resume, in safetensors + JSON (no pickle).

A checkpoint directory `step-0000050/` holds:
  trainable.safetensors   the trainable parameters (adapter or full weights)
  best.safetensors        the best-so-far trainable parameters by valid loss (keep-best), if any
  average.safetensors     the moving average of the trainable parameters (train.ema), if on
  optimizer.safetensors   AdamW moments and step counts, keyed `state.<param index>.<name>`
  rng.safetensors         torch RNG states (CPU, and CUDA/MPS where used): dropout continues exactly
  state.json              loop position (step, epoch, batch), early-stopping state, loss history,
                          the optimizer's param_groups, and a fingerprint of params + data
Data order needs no state: it is a function of (seed, epoch). The lr is a function of the step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from calltune.errors import InputError
from calltune.io import atomic_path

PREFIX = "step-"


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def optimizer_tensors(optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in sd["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_tensors(device: torch.device) -> dict:
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state_all([states[f"cuda.{i}"] for i in range(torch.cuda.device_count())])
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def save_checkpoint(root: Path, step: int, trainable: dict, best: dict | None, optimizer,
                    loop_state: dict, device: torch.device, keep: int = 1, average: dict | None = None) -> Path:
    """Write `root/step-NNNNNNN` atomically, then prune all but the newest `keep`."""
    path = root / f"{PREFIX}{step:07d}"
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(_contiguous(trainable), tmp / "trainable.safetensors")
        if best is not None:
            save_file(_contiguous(best), tmp / "best.safetensors")
        if average is not None:
            save_file(_contiguous(average), tmp / "average.safetensors")
        save_file(_contiguous(opt_tensors), tmp / "optimizer.safetensors")
        save_file(_contiguous(rng_tensors(device)), tmp / "rng.safetensors")
        (tmp / "state.json").write_text(json.dumps({**loop_state, "optimizer": opt_meta}, indent=1))
    for old in sorted(root.glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(root: Path) -> Path | None:
    found = sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(path: Path, fingerprint: str) -> dict:
    """Read a checkpoint made with the same params and data (else InputError)."""
    state = json.loads((path / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise InputError("checkpoint was made with other params or data; delete it or set train.resume: false",
                         path=path, field="train.resume")
    best, average = path / "best.safetensors", path / "average.safetensors"
    return {
        "loop": state,
        "trainable": load_file(path / "trainable.safetensors"),
        "best": load_file(best) if best.is_file() else None,
        "average": load_file(average) if average.is_file() else None,
        "optimizer": load_file(path / "optimizer.safetensors"),
        "rng": load_file(path / "rng.safetensors"),
    }
