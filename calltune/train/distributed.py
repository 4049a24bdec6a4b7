"""Data-parallel training across processes (torchrun): who runs what, and the few collectives.

The plan of a run (datasets.length_grouped_batches / packing.packed_batches, chunked into optimizer
steps of `grad_accum` micro-batches) is a function of params and data alone, never of the number of
processes. With N processes, each optimizer step's micro-batches are dealt round-robin: process r
runs micro-batches r, r + N, r + 2N, ... of the step (`Dist.share`). Every process computes the
gradient of its share of the step's loss (normalised by the target tokens of the WHOLE step, known
from the plan without communication), then one all-reduce sums the gradients and the loss
(`Dist.sum_tensors`). Every process then holds the single-process gradient (up to the order of
float additions) and takes the same optimizer step, so the weights stay identical everywhere.

Consequences:
- the global batch is `batch_size` x `grad_accum` examples whatever N is; with N processes each
  runs grad_accum / N micro-batches a step (set grad_accum to a multiple of N, or some processes
  idle part of every step);
- a checkpoint is the same whatever N wrote it, so a run resumes with another number of processes;
- packing and prefix sharing work per micro-batch, so they work per process unchanged.

`train.distributed` (optional; absent = auto):
    auto    data-parallel when the environment torchrun sets says WORLD_SIZE > 1, else one process
    N >= 1  N processes on this machine: the train stage launches torchrun itself (launch_command)
            when it is not already running under it; 1 = one process
`train.shard_optimizer` (optional; absent = false): with more than one process, keep AdamW's state
sharded across the processes (torch's ZeroRedundancyOptimizer, ZeRO stage 1): each process holds
1/N of the moments, for method full on a base whose optimizer state does not fit one device.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

import torch

from calltune.errors import InputError

T = TypeVar("T")
TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets for every process it starts
BUCKET_ELEMENTS = 1 << 25  # gradients are all-reduced in flat buckets of at most this many elements


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank of world_size (1 = no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes: checkpoints, dvclive logs, the adapter, the summary."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items of a step: round-robin, so N processes cover the step exactly once."""
        return list(items[self.rank::self.world_size])

    def sum_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Sum each tensor over all processes, in place (one collective per same-dtype bucket)."""
        if not self.enabled or not tensors:
            return
        import torch.distributed as dist

        for bucket in buckets(tensors):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for t in bucket:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when `flag` is true in any process (a decision every process must take together)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast_from_main(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite `tensors` everywhere with the main process's values (start from one model)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


SINGLE = Dist()


def buckets(tensors: list[torch.Tensor], limit: int = BUCKET_ELEMENTS) -> list[list[torch.Tensor]]:
    """Consecutive runs of tensors with one dtype and device, each at most `limit` elements (a
    larger tensor rides alone)."""
    out: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        last = out[-1] if out else None
        if last and last[0].dtype == t.dtype and last[0].device == t.device and size + t.numel() <= limit:
            last.append(t)
            size += t.numel()
        else:
            out.append([t])
            size = t.numel()
    return out


def torchrun_env(env: Mapping[str, str] = os.environ) -> Dist | None:
    """The Dist torchrun describes in `env`, or None outside torchrun."""
    if not all(key in env for key in TORCHRUN_KEYS):
        return None
    return Dist(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]))


def requested_processes(setting) -> int | None:
    """train.distributed -> the number of processes asked for, or None for auto (the environment)."""
    if setting is None or setting == "auto":
        return None
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise InputError(f"must be auto or a number of processes >= 1, not {setting!r}", field="train.distributed")
    return setting


def resolve(setting, env: Mapping[str, str] = os.environ) -> Dist:
    """Where this process stands: torchrun's environment when present, else one process.

    train.distributed: 1 under a torchrun of several processes is a contradiction (each would
    train alone and write the same files), so it is an error."""
    wanted = requested_processes(setting)
    found = torchrun_env(env)
    if found is None:
        return SINGLE
    if wanted == 1 and found.world_size > 1:
        raise InputError(f"is 1 but torchrun started {found.world_size} processes; set it to auto",
                         field="train.distributed")
    return found


def must_launch(setting, env: Mapping[str, str] = os.environ) -> int:
    """How many processes the train stage should start through torchrun: train.distributed = N > 1
    outside torchrun; 0 = run here (auto, 1, or already inside torchrun)."""
    wanted = requested_processes(setting)
    return wanted if wanted and wanted > 1 and torchrun_env(env) is None else 0


def launch_command(processes: int, script: str, args: Sequence[str]) -> list[str]:
    """torchrun for `processes` processes on this machine. --standalone picks a free rendezvous
    port, so several runs (queued DVC experiments) can train side by side."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            script, *args]


def launch_env(processes: int, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for launch_command: CPU threads split between the processes (torchrun would
    give each process one thread), unless OMP_NUM_THREADS is set already."""
    out = dict(env)
    if "OMP_NUM_THREADS" not in out:
        out["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return out


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def process_device(device: torch.device, dist: Dist) -> torch.device:
    """A CUDA process uses the GPU of its local rank; CPU (and MPS) stay as they are."""
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device


def start(dist: Dist, device: torch.device) -> None:
    """Join torchrun's process group (env:// rendezvous) with NCCL on CUDA, gloo elsewhere."""
    import torch.distributed as tdist

    if dist.enabled and not tdist.is_initialized():
        options = {"device_id": device} if device.type == "cuda" else {}
        tdist.init_process_group(backend_for(device), rank=dist.rank, world_size=dist.world_size, **options)


def joined() -> bool:
    """Whether this process is in a process group already (a soup's earlier run joined it: gloo
    cannot rendezvous twice on torchrun's store, so the group outlives each run of a soup)."""
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


def stop(dist: Dist) -> None:
    import torch.distributed as tdist

    if dist.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def sharded_adamw(params, lr: float, weight_decay: float, device: torch.device):
    """AdamW whose state is split across the processes (ZeRO-1); every process steps its shard
    and broadcasts the updated parameters."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.AdamW, lr=lr, weight_decay=weight_decay,
                                   **({"fused": True} if device.type == "cuda" else {}))
