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
    return conversation_example(contract_messages(raw["messages"], path, line), tools, path, line)


def contract_messages(raw_messages: list, path=None, line=None, *, by_position: bool = False) -> list[dict]:
    """OpenAI chat messages -> calltune's messages: call arguments as dicts, and each tool result
    named by the call it answers (its `name`, or the call with its `tool_call_id`; with
    `by_position`, a result with neither answers the next unanswered call of the last turn, as
    chat clients that send no ids expect)."""
    names_by_id, last_calls, answered, messages = {}, [], 0, []
    for i, message in enumerate(raw_messages):
        field = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InputError("each message must be an object", path=path, line=line, field=field)
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise InputError(f"unknown role {message.get('role')!r}", path=path, line=line, field=f"{field}.role")
        if role == "assistant":
            raw_calls = message.get("tool_calls") or []
            calls = [parse_call(c, path, line, f"{field}.tool_calls[{j}]") for j, c in enumerate(raw_calls)]
            for raw_call, call in zip(raw_calls, calls):
                if isinstance(raw_call, dict) and raw_call.get("id"):
                    names_by_id[raw_call["id"]] = call["name"]
            if calls:
                last_calls, answered = [call["name"] for call in calls], 0
            messages.append(assistant_message(text_content(message.get("content")), calls))
        elif role == "tool":
            name = message.get("name") or names_by_id.get(message.get("tool_call_id"))
            if name is None and by_position and answered < len(last_calls):
                name = last_calls[answered]
            if name is None:
                raise InputError("a tool message answers no earlier tool call (it has no name and no known "
                                 "tool_call_id)", path=path, line=line, field=field)
            answered += 1
            messages.append({"role": "tool", "name": name, "content": result_content(message.get("content"))})
        else:
            messages.append({"role": role, "content": text_content(message.get("content"))})
    return messages


def text_content(content) -> str:
    """OpenAI content: a string, null, or a list of parts of which the text parts count."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""
