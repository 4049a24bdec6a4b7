"""Device, dtype and backend resolution."""

from __future__ import annotations

import platform

import pytest
import torch

from calltune.errors import InputError
from calltune.train import device as dev


def test_auto_picks_an_available_device():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert dev.resolve_device("auto").type == expected
    assert dev.resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_an_input_error():
    with pytest.raises(InputError) as err:
        dev.resolve_device("cuda")
    assert err.value.field == "train.device"


def test_cpu_bf16_follows_the_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("flags\t: fpu avx512f avx512_bf16 amx_tile\n")
    without.write_text("flags\t: fpu avx2\n")
    assert dev.cpu_has_bf16(with_bf16) and not dev.cpu_has_bf16(without)
    assert not dev.cpu_has_bf16(tmp_path / "missing")


def test_dtype_auto_is_bf16_only_where_supported(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)
    assert dev.resolve_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)
    assert dev.resolve_dtype("auto", cpu) is torch.float32
    assert dev.resolve_dtype("float32", cpu) is torch.float32
    with pytest.raises(InputError) as err:
        dev.resolve_dtype("bfloat16", cpu)
    assert err.value.field == "train.dtype"
    with pytest.raises(InputError):
        dev.resolve_dtype("float16", cpu)  # never fp16


def test_backend_auto_is_mlx_only_on_apple_silicon():
    expected = "mlx" if dev.apple_silicon() else "torch"
    if platform.system() == "Darwin" and expected == "mlx":
        pytest.importorskip("mlx_lm")
    assert dev.resolve_backend("auto") == expected
    assert dev.resolve_backend("mlx") == "mlx" and dev.resolve_backend("torch") == "torch"


def test_compile_auto_is_on_for_cuda_only():
    assert dev.use_compile("auto", torch.device("cuda"))
    assert not dev.use_compile("auto", torch.device("cpu"))
    assert dev.use_compile(True, torch.device("cpu")) and not dev.use_compile(False, torch.device("cuda"))
