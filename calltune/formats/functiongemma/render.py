"""Python renderer of the FunctionGemma chat format, written as a walk over the messages.

It yields (text, written_by_model) pieces so the same walk gives both the full text and the
prompt/target split used for training.
"""

from __future__ import annotations

from typing import Iterator

from calltune.errors import InputError
from calltune.formats.functiongemma.syntax import format_call, format_declaration, format_response
from calltune.formats.messages import (ASSISTANT_ROLES, SYSTEM_ROLES, call_function, role_of,
                                       tool_results)

DEFAULT_DEVELOPER_PROMPT = "You are a model that can do function calling with the following functions"
START_RESPONSE = "<start_function_response>"

Piece = tuple[str, bool]  # (text, written by the model)


def render_pieces(messages: list[dict], tools: list[dict] | None,
                  add_generation_prompt: bool) -> Iterator[tuple[int, Piece]]:
    """(message index, piece) for the whole conversation; index -1 for text outside messages."""
    yield -1, ("<bos>", False)
    has_system = bool(messages) and role_of(messages[0], 0) in SYSTEM_ROLES
    if has_system or tools:
        system = _text(messages[0], 0) if has_system else DEFAULT_DEVELOPER_PROMPT
        declarations = "".join(format_declaration(tool) for tool in tools or [])
        yield -1, (f"<start_of_turn>developer\n{system}{declarations}<end_of_turn>\n", False)
    in_model_turn = False
    for index, message in enumerate(messages):
        if index == 0 and has_system:
            continue
        role = role_of(message, index)
        if role not in ASSISTANT_ROLES and role != "tool" and in_model_turn:
            yield index, ("<end_of_turn>\n", False)
            in_model_turn = False
        if role in SYSTEM_ROLES:
            yield index, (f"<start_of_turn>developer\n{_text(message, index)}<end_of_turn>\n", False)
        elif role == "user":
            yield index, (f"<start_of_turn>user\n{_text(message, index)}<end_of_turn>\n", False)
        else:
            if not in_model_turn:
                yield index, ("<start_of_turn>model\n", False)
                in_model_turn = True
            if role == "tool":
                yield from _tool_pieces(messages, index)
            else:
                in_model_turn = yield from _assistant_pieces(message, index, is_last=index == len(messages) - 1)
    if add_generation_prompt and not in_model_turn:
        yield -1, ("<start_of_turn>model\n", False)


def _assistant_pieces(message: dict, index: int, is_last: bool):
    """Pieces of one assistant message; returns whether the model turn is still open."""
    if message.get("content"):
        yield index, (_text(message, index), True)
    tool_calls = message.get("tool_calls") or []
    for function in map(call_function, tool_calls):
        yield index, (format_call(function["name"], function.get("arguments", {})), True)
    if not tool_calls:
        yield index, ("<end_of_turn>", True)
        yield index, ("\n", False)
        return False
    if is_last:
        yield index, (START_RESPONSE, True)
    return True


def _tool_pieces(messages: list[dict], index: int):
    # The model itself writes the <start_function_response> that follows its calls (it is the
    # stop token of a call target); the response body and any further responses are context.
    after_call = index > 0 and messages[index - 1].get("role") in ASSISTANT_ROLES
    for name, result in tool_results(messages[index]):
        text = format_response(name, result)
        if after_call:
            yield index, (START_RESPONSE, True)
            text = text[len(START_RESPONSE):]
            after_call = False
        yield index, (text, False)


def _text(message: dict, index: int) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise InputError("message content must be a string", field=f"messages[{index}].content")
    return content.strip()
