"""ShareGPT / Hermes tool conversations: {"conversations": [{"from", "value"}], "tools"?}.

Calls are <tool_call>{...}</tool_call> blocks in gpt turns (JSON or the Python-literal dicts
Hermes prints), results are <tool_response>{...}</tool_response> blocks in tool turns. Without a
"tools" field, tools come from the <tools>...</tools> block of the system turn, and that system
turn (a format-specific tool prompt) is dropped: the chat format writes its own.
"""

from __future__ import annotations

import json
import re

from calltune.data.importers.common import checked_tools, loads_field, parse_call, require, result_content
from calltune.data.importers.conversation import assistant_message, conversation_example
from calltune.errors import InputError

RECORD_SCHEMA = {
    "type": "object",
    "required": ["conversations"],
    "properties": {
        "conversations": {"type": "array", "minItems": 1,
                          "items": {"type": "object", "required": ["from", "value"],
                                    "properties": {"from": {"type": "string"}, "value": {"type": "string"}}}},
        "tools": {"type": ["string", "array"]},
    },
}
_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
          "function_call": "assistant", "tool": "tool", "function_response": "tool", "observation": "tool",
          "ipython": "tool"}
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)


def to_example(raw, path, line):
    require(raw, RECORD_SCHEMA, path, line)
    raw_tools = loads_field(raw["tools"], path, line, "tools", loose=True) if "tools" in raw else None
    messages, pending = [], []
    for i, turn in enumerate(raw["conversations"]):
        field, role, value = f"conversations[{i}]", _ROLES.get(turn["from"]), turn["value"]
        if role is None:
            raise InputError(f"unknown speaker {turn['from']!r}", path=path, line=line, field=f"{field}.from")
        if role == "system" and raw_tools is None and _TOOLS.search(value):
            raw_tools = _system_tools(value, path, line, f"{field}.value")
        elif role == "assistant":
            blocks = [value] if turn["from"] == "function_call" else _TOOL_CALL.findall(value)
            calls = [parse_call(b.strip(), path, line, f"{field}.value", loose=True) for b in blocks]
            pending = [c["name"] for c in calls]
            messages.append(assistant_message(None if calls else value.strip(), calls))
        elif role == "tool":
            for block in _TOOL_RESPONSE.findall(value) or [value]:
                messages.append(_tool_message(block.strip(), pending))
        else:
            messages.append({"role": role, "content": value})
    return conversation_example(messages, checked_tools(raw_tools or [], path, line), path, line)


def _system_tools(system: str, path, line, field) -> list:
    """The <tools> block: a JSON (or Python-literal) list, or tool objects one after another."""
    block = _TOOLS.search(system)[1].strip()
    try:
        parsed = loads_field(block, path, line, field, loose=True)
        return parsed if isinstance(parsed, list) else [parsed]
    except InputError:
        return _concatenated_json(block, path, line, field)


def _concatenated_json(text: str, path, line, field) -> list:
    decoder, pos, items = json.JSONDecoder(), 0, []
    while pos < len(text):
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(f"cannot read the <tools> block: {e.msg}", path=path, line=line, field=field) from None
        items.append(item)
        pos = len(text) - len(text[pos:].lstrip())
    return items


def _tool_message(block: str, pending: list[str]) -> dict:
    """A result names its tool; one that does not is matched to the calls in order."""
    try:
        parsed = loads_field(block, None, None, "", loose=True)
    except InputError:
        parsed = block
    if isinstance(parsed, dict) and isinstance(parsed.get("name"), str):
        if parsed["name"] in pending:
            pending.remove(parsed["name"])
        content = parsed.get("content", {k: v for k, v in parsed.items() if k != "name"})
        return {"role": "tool", "name": parsed["name"], "content": result_content(content)}
    name = pending.pop(0) if pending else ""
    return {"role": "tool", "name": name, "content": result_content(parsed) if isinstance(parsed, str) else parsed}
