"""A chat conversation (OpenAI-style messages) as an Example: the last user message is the
query, what came before is history, and what comes after is the expected exchange.

Accepted final exchanges: a text reply (no call); or calls, optionally followed by their tool
results and a text answer. Results with no answer after them are dropped (the target is the
calls). Anything longer (a second round of calls) is rejected with the record's line.
"""

from __future__ import annotations

from calltune.data.examples import Example
from calltune.errors import InputError


def split_conversation(messages: list[dict], path, line) -> tuple[str | None, list[dict], str, list[dict]]:
    """(system, history, query, messages after the query)."""
    system = None
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise InputError("conversation has no user message", path=path, line=line)
    last = users[-1]
    return system, messages[:last], messages[last]["content"], messages[last + 1:]


def conversation_example(messages: list[dict], tools: list[dict], path, line) -> Example:
    system, history, query, tail = split_conversation(messages, path, line)
    calls, results, answer = _final_exchange(tail, path, line)
    return Example(query=query, calls=calls, tools=tools, path=str(path), line=line, system=system,
                   history=history, tool_results=results, answer=answer)


def assistant_message(content: str | None, calls: list[dict]) -> dict:
    message = {"role": "assistant"}
    if content or not calls:
        message["content"] = content or ""
    if calls:
        message["tool_calls"] = calls
    return message


def _final_exchange(tail: list[dict], path, line):
    if not tail or tail[0]["role"] != "assistant":
        raise InputError("no assistant reply after the last user message", path=path, line=line)
    first, rest = tail[0], tail[1:]
    calls = first.get("tool_calls", [])
    if not calls:
        if rest:
            raise InputError("messages follow the final text reply", path=path, line=line)
        return [], None, first.get("content", "")
    n_results = next((i for i, m in enumerate(rest) if m["role"] != "tool"), len(rest))
    results, after = [m["content"] for m in rest[:n_results]], rest[n_results:]
    if not after:
        return calls, None, None
    if len(after) == 1 and after[0]["role"] == "assistant" and not after[0].get("tool_calls"):
        return calls, results, after[0].get("content", "")
    raise InputError("more than one round of tool calls after the last user message is not supported",
                     path=path, line=line)
