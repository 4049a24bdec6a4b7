"""Pick the backend, device and dtype: cuda > mps > cpu, bf16 where the hardware has it, never fp16."""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import random
from pathlib import Path

import torch

from calltune.errors import InputError
from calltune.model_dir import DTYPES


def apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def resolve_backend(requested: str) -> str:
    """`auto` is mlx on Apple Silicon (when mlx-lm is installed), torch everywhere else."""
    if requested != "auto":
        return requested
    if apple_silicon() and importlib.util.find_spec("mlx_lm") is not None:
        return "mlx"
    return "torch"


def resolve_device(requested: str) -> torch.device:
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return torch.device(next(name for name in ("cuda", "mps", "cpu") if available[name]))
    if not available.get(requested, False):
        raise InputError(f"device {requested!r} is not available on this machine", field="train.device")
    return torch.device(requested)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX); without them bf16 is emulated and slower than fp32."""
    try:
        flags = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "mps":
        try:
            torch.ones(1, dtype=torch.bfloat16, device=device)
            return True
        except (RuntimeError, TypeError):
            return False
    return cpu_has_bf16()


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 where the device supports it natively, else fp32. fp16 is never offered:
    Gemma's activations overflow it."""
    if requested == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if requested not in DTYPES:
        raise InputError(f"unknown dtype {requested!r} (bfloat16 or float32)", field="train.dtype")
    if DTYPES[requested] is torch.bfloat16 and not bf16_supported(device):
        raise InputError(f"bfloat16 is not supported on {device.type} here", field="train.dtype")
    return DTYPES[requested]


def use_compile(requested, device: torch.device) -> bool:
    """`auto` compiles on CUDA only: there the step is launch-bound and compiling pays back within
    a minute; on CPU, inductor's C++ builds take minutes on a laptop-class machine."""
    return device.type == "cuda" if requested == "auto" else bool(requested)


def attention_kernels(device: torch.device):
    """On CUDA, SDPA without the cuDNN backend: it builds a new plan for every new sequence
    length (~2 ms of CPU per attention call measured on an H200), and batch lengths vary."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def seed_everything(seed: int) -> None:
    """Seed every generator training touches (torch's seeds CUDA and MPS too).

    CPU kernels are deterministic for a fixed thread count (tests/train checks bitwise-equal
    adapters). torch.use_deterministic_algorithms is not turned on: it slowed CPU training ~30x
    here (it fills every new tensor to catch uninitialised reads).
    """
    random.seed(seed)
    torch.manual_seed(seed)
