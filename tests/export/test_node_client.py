"""The Node client (npm @huggingface/transformers, offline, local files) runs every exported variant
and produces what the Python onnxruntime engine produces: prompt, text and parsed calls."""

from __future__ import annotations

import json

import pytest
from export_helpers import ROOT
from gguf_helpers import CALLS, TOOLS, conversation
from js_helpers import require_js, run_node

from calltune.export.onnx_quantize import FP32, VARIANTS
from calltune.export.onnx_runtime import OnnxEngine
from calltune.formats import get_format

pytestmark = pytest.mark.js

FMT = get_format("functiongemma")
REQUESTS = CALLS[:3] + [("Remind me to call mom tomorrow at 5 pm", None, None)]
MAX_NEW_TOKENS = 40


@pytest.mark.parametrize("variant", ["fp32", *VARIANTS])
def test_node_generates_what_python_generates(tool_onnx, variant):
    require_js()
    _, onnx_dir, quantized, _ = tool_onnx
    model_dir, info = (onnx_dir, FP32) if variant == "fp32" else (quantized, VARIANTS[variant])
    job = {"model_dir": str(model_dir), "dtype": info.tjs_dtype, "tools": TOOLS, "max_new_tokens": MAX_NEW_TOKENS,
           "requests": [query for query, _, _ in REQUESTS]}
    results = run_node(ROOT / "web" / "node_client.mjs", stdin=json.dumps(job))
    assert len(results) == len(REQUESTS)
    python = OnnxEngine(model_dir, model_file=info.file)
    for (query, name, arguments), result in zip(REQUESTS, results):
        prompt = FMT.prompt(conversation(query), TOOLS)
        assert result["prompt"] == prompt  # the chat template renders the same in Jinja (JS) and Python
        expected = python.generate(prompt, MAX_NEW_TOKENS, FMT.stop_strings)
        assert result["text"] == expected.text
        parsed = FMT.parse(expected.text)
        assert result["calls"] == parsed.calls and (result["error"] is None) == (parsed.error is None)
        if name and variant != "q4":  # the taught calls survive fp16 and 8-bit weights
            assert result["calls"] == [{"name": name, "arguments": arguments}]
    print(f"\nnode {variant}: " + "; ".join(f"{r['calls'] or r['content'][:30]!r} {r['seconds']:.2f}s" for r in results))
