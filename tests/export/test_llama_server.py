"""llama.cpp's own OpenAI-compatible server (llama-server) on the taught tiny model's GGUFs.

The FunctionGemma chat template stored in the GGUF renders the request (`--jinja`) exactly as
calltune's renderer does — tools, calls, and OpenAI-style tool results that name their call by id
only — and the reply (`--special` keeps the control tokens) carries the model's call, which
calltune's parser reads. llama.cpp has no FunctionGemma call parser, so requests ask it not to parse
(`tool_choice: "none"`); `calltune.serve` does that and returns OpenAI `tool_calls` (test_serve.py).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from gguf_helpers import SYSTEM, TOOLS

from calltune.export.gguf import gguf_name
from calltune.formats import get_format
from calltune.llama_server import running_llama_server

FMT = get_format("functiongemma")
TOKYO = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the weather in Tokyo?"}]
ANSWERED = TOKYO + [
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Tokyo"}'}}]},
    {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21 C"}]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(llama_server_binary, tool_ggufs):
    with running_llama_server(tool_ggufs[1] / gguf_name("q8_0"), threads=2, ctx_size=2048) as base_url:
        yield base_url


@pytest.mark.parametrize("messages", [TOKYO, ANSWERED], ids=["tools", "tool-result-by-id"])
def test_the_ggufs_template_renders_what_calltune_renders(server, messages):
    from calltune.data.importers.openai import contract_messages

    prompt = post(f"{server}/apply-template", {"messages": messages, "tools": TOOLS})["prompt"]
    expected = FMT.render(contract_messages(messages), TOOLS, add_generation_prompt=True)
    assert "<bos>" + prompt == expected


def test_what_calltune_serve_forwards_renders_as_calltune_renders(server):
    """calltune.serve sends llama-server the request in calltune's form (formats.generic's
    template_messages): calls with their arguments, each tool result named by its call."""
    from calltune.data.importers.openai import contract_messages
    from calltune.formats.generic import template_messages

    messages = contract_messages(ANSWERED + [{"role": "user", "content": "And in Osaka?"}])
    prompt = post(f"{server}/apply-template", {"messages": template_messages(messages), "tools": TOOLS})["prompt"]
    assert "<bos>" + prompt == FMT.render(messages, TOOLS, add_generation_prompt=True)
    assert "response:get_weather{value:<escape>sunny, 21 C<escape>}" in prompt


def test_a_chat_request_with_tools_gets_the_call_back(server):
    reply = post(f"{server}/v1/chat/completions", {
        "messages": TOKYO, "tools": TOOLS, "tool_choice": "none", "stop": FMT.stop_strings,
        "temperature": 0, "max_tokens": 48})
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop"
    parsed = FMT.parse(choice["message"]["content"])
    assert parsed.ok and parsed.calls == [{"name": "get_weather", "arguments": {"location": "Tokyo"}}]
    assert reply["usage"]["prompt_tokens"] > 40  # the tool declarations were in the prompt
