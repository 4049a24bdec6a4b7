"""The web page in headless Chromium (Debian's, driven by playwright-core): it loads the exported model
with Transformers.js on WebAssembly, takes a typed request and shows the parsed tool call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from export_helpers import ROOT
from gguf_helpers import TOOLS
from js_helpers import require_js, run_node, web_server

pytestmark = pytest.mark.js

DRIVER = ROOT / "tests" / "export" / "browser_driver.mjs"
PAGE_TIMEOUT_MS = 180_000


@pytest.mark.parametrize("variant", ["fp32", "fp16", "q8", "q4"])
def test_page_shows_the_tool_call(tool_onnx, tmp_path, variant):
    require_js(browser=True)
    _, onnx_dir, quantized, _ = tool_onnx
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    screenshot = tmp_path / f"browser-{variant}.png"
    with web_server(onnx_dir if variant == "fp32" else quantized, tools) as url:
        (page,) = run_node(DRIVER, "--url", f"{url}?dtype={variant}&tokens=40", "--request", "What is the weather in Tokyo?",
                           "--screenshot", str(screenshot), "--timeout-ms", str(PAGE_TIMEOUT_MS),
                           timeout=2 * PAGE_TIMEOUT_MS / 1000 + 60)
    print(f"\nbrowser {variant}: {page['status']} {page['call']!r}")
    assert page["state"] == "done", page
    assert page["isolated"] is True  # COOP/COEP served: threaded WASM is possible
    assert not [line for line in page["console"] if line.startswith(("error", "pageerror"))], page["console"]
    assert json.loads(page["call"]) == {"name": "get_weather", "arguments": {"location": "Tokyo"}}
    assert screenshot.stat().st_size > 10_000
    if target := os.environ.get("CALLTUNE_SCREENSHOT_DIR"):
        shutil.copyfile(screenshot, os.path.join(target, screenshot.name))


def test_the_page_decodes_under_the_tools_grammar(tool_onnx, tmp_path):
    """With `python -m calltune.web_grammar`'s file served, the page's reply is a valid call of the
    declared tools, where the taught model, unconstrained, calls a tool or an argument they do not have."""
    from constrain.constrain_helpers import call_errors
    from test_node_client import RENAMED

    require_js(browser=True)
    _, onnx_dir, _, _ = tool_onnx
    tools, grammar = tmp_path / "tools.json", tmp_path / "grammar.json"
    tools.write_text(json.dumps(RENAMED))
    done = subprocess.run([sys.executable, "-m", "calltune.web_grammar", str(tools), "--out", str(grammar)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    pages = {}
    for constrained in (True, False):
        with web_server(onnx_dir, tools, grammar) as url:
            (pages[constrained],) = run_node(
                DRIVER, "--url", f"{url}?dtype=fp32&tokens=40{'' if constrained else '&constrain=0'}",
                "--request", "What is the weather in Tokyo?", "--screenshot", str(tmp_path / f"c{constrained}.png"),
                "--timeout-ms", str(PAGE_TIMEOUT_MS), timeout=2 * PAGE_TIMEOUT_MS / 1000 + 60)
    for page in pages.values():
        assert page["state"] == "done", page
        assert not [line for line in page["console"] if line.startswith(("error", "pageerror"))], page["console"]
    assert call_errors([json.loads(pages[False]["call"])], RENAMED)  # unconstrained: no such tool or argument
    call = json.loads(pages[True]["call"])
    assert call["name"] == "get_weather" and call_errors([call], RENAMED) == [], call
