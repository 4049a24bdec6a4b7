"""The web page in headless Chromium (Debian's, driven by playwright-core): it loads the exported model
with Transformers.js on WebAssembly, takes a typed request and shows the parsed tool call."""

from __future__ import annotations

import json
import os
import shutil

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
