"""Running the JavaScript clients of an export: Node (web/node_client.mjs) and the page in headless
Chromium (web/serve.mjs + browser_driver.mjs). Their npm/apt pieces come from .ci/install_js.sh;
without them the tests skip, unless CALLTUNE_REQUIRE_JS=1 (set by .ci/run) makes that a failure."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from export_helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
NODE_TIMEOUT_S = 300


def require_js(*, browser: bool = False) -> None:
    missing = [what for what, ok in [
        ("node", shutil.which("node") is not None),
        ("node_modules/@huggingface/transformers", (ROOT / "node_modules" / "@huggingface" / "transformers").is_dir()),
        ("node_modules/playwright-core", not browser or (ROOT / "node_modules" / "playwright-core").is_dir()),
        (str(CHROMIUM), not browser or CHROMIUM.is_file()),
    ] if not ok]
    if missing:
        message = f"missing {', '.join(missing)}: run .ci/install_js.sh"
        if os.environ.get("CALLTUNE_REQUIRE_JS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def run_node(script: Path, *args: str, stdin: str | None = None, timeout: float = NODE_TIMEOUT_S) -> list[dict]:
    """Run a Node script; its stdout is JSON lines."""
    done = subprocess.run(["node", str(script), *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{script.name} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def web_server(model_dir: Path, tools_file: Path, grammar_file: Path | None = None):
    """web/serve.mjs on 127.0.0.1 and a free port (with the tools' call grammar, if given); yields
    the base URL, stops the server after."""
    server = subprocess.Popen(["node", str(ROOT / "web" / "serve.mjs"), "--model", str(model_dir),
                               "--tools", str(tools_file), "--port", "0",
                               *(["--grammar", str(grammar_file)] if grammar_file else [])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = server.stdout.readline()
        if not line.startswith("serving http://127.0.0.1:"):
            server.kill()
            pytest.fail(f"web/serve.mjs did not start: {line}{server.communicate(timeout=10)[1][-2000:]}")
        yield line.split()[1]
    finally:
        stop(server)


def stop(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace_s`."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
