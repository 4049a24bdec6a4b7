"""OpenAI chat fine-tuning JSONL: {"messages": [...], "tools": [...]} with assistant tool_calls
(arguments as JSON strings) and tool messages linked by tool_call_id."""

from __future__ import annotations

from calltune.data.importers.common import checked_tools, parse_call, require, result_content
from calltune.data.importers.conversation import assistant_message, conversation_example
from calltune.errors import InputError

RECORD_SCHEMA = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "messages": {"type": "array", "minItems": 1,
                     "items": {"type": "object", "required": ["role"], "properties": {"role": {"type": "string"}}}},
        "tools": {"type": "array"},
    },
}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def to_example(raw, path, line):
    require(raw, RECORD_SCHEMA, path, line)
    tools = checked_tools(raw.get("tools", []), path, line)
    names_by_id, messages = {}, []
    for i, message in enumerate(raw["messages"]):
        role = _ROLES.get(message["role"])
        field = f"messages[{i}]"
        if role is None:
            raise InputError(f"unknown role {message['role']!r}", path=path, line=line, field=f"{field}.role")
        if role == "assistant":
            raw_calls = message.get("tool_calls") or []
            calls = [parse_call(c, path, line, f"{field}.tool_calls[{j}]") for j, c in enumerate(raw_calls)]
            for raw_call, call in zip(raw_calls, calls):
                if isinstance(raw_call, dict) and raw_call.get("id"):
                    names_by_id[raw_call["id"]] = call["name"]
            messages.append(assistant_message(text_content(message.get("content")), calls))
        elif role == "tool":
            name = message.get("name") or names_by_id.get(message.get("tool_call_id"))
            if name is None:
                raise InputError("tool message names no tool and no earlier tool_call_id", path=path, line=line,
                                 field=field)
            messages.append({"role": "tool", "name": name, "content": result_content(message.get("content"))})
        else:
            messages.append({"role": role, "content": text_content(message.get("content"))})
    return conversation_example(messages, tools, path, line)


def text_content(content) -> str:
    """OpenAI content: a string, null, or a list of parts of which the text parts count."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""
