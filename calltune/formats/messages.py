"""Read the message and tool shapes every format accepts, in one place.

Tools: OpenAI `{"type": "function", "function": {...}}`, `{"function": {...}}` or bare
`{"name", "description", "parameters"}`. Tool calls: the same three shapes, `arguments` a dict
or a JSON string. Tool results: calltune's `{"role": "tool", "name": N, "content": <any JSON>}`
or the cookbook's `content = {"name", "response"}` (or a list of them).
"""

from __future__ import annotations

import json

from calltune.errors import InputError

ROLES = ("system", "developer", "user", "assistant", "model", "tool")
SYSTEM_ROLES = ("system", "developer")
ASSISTANT_ROLES = ("assistant", "model")


def tool_function(tool: dict) -> dict:
    """The `{"name", "description", "parameters"}` part of a tool in any accepted shape."""
    function = tool.get("function", tool) if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InputError(f"a tool needs a function name, got {json.dumps(tool)[:200]}", field="tools")
    return function


def call_function(tool_call: dict) -> dict:
    """The `{"name", "arguments"}` part of a tool call in any accepted shape."""
    function = tool_call.get("function", tool_call) if isinstance(tool_call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InputError(f"a tool call needs a function name, got {json.dumps(tool_call)[:200]}",
                         field="tool_calls")
    return function


def arguments_dict(function: dict) -> dict:
    """A call's arguments as a dict, decoding a JSON-string form."""
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            raise InputError(f"arguments of {function['name']} are not valid JSON: {e.msg}",
                             field="tool_calls.arguments") from None
    if not isinstance(arguments, dict):
        raise InputError(f"arguments of {function['name']} must be an object", field="tool_calls.arguments")
    return arguments


def tool_results(message: dict) -> list[tuple[str, object]]:
    """(function name, result) pairs carried by one tool message."""
    if "name" in message:
        return [(_result_name(message["name"]), message.get("content"))]
    content = message.get("content")
    entries = content if isinstance(content, list) else [content]
    if not entries or not all(isinstance(e, dict) and "name" in e and "response" in e for e in entries):
        raise InputError('a tool message needs "name", or content {"name", "response"} (or a list of them)',
                         field="messages.tool")
    return [(_result_name(e["name"]), e["response"]) for e in entries]


def _result_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise InputError("a tool result needs a function name", field="messages.tool.name")
    return name


def role_of(message: dict, index: int) -> str:
    role = message.get("role") if isinstance(message, dict) else None
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})",
                         field=f"messages[{index}].role")
    return role


def last_user_index(messages: list[dict]) -> int:
    """Index of the last user message: everything after it is the final exchange."""
    for index in range(len(messages) - 1, -1, -1):
        if role_of(messages[index], index) == "user":
            return index
    raise InputError("the conversation has no user message", field="messages")


def expected_calls(messages: list[dict]) -> list[dict]:
    """Calls of the final exchange's first assistant message; [] when it answers in text."""
    for message in messages[last_user_index(messages) + 1:]:
        if message.get("role") in ASSISTANT_ROLES:
            return [{"name": f["name"], "arguments": arguments_dict(f)}
                    for f in map(call_function, message.get("tool_calls") or [])]
    return []
