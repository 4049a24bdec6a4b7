"""The generic format: a model's own tool-aware chat template (Qwen2.5, Llama 3.x, SmolLM…).

Everything is rendered by the template itself, in the sandbox, so training text and serving text
cannot drift apart: the target of an assistant message is what the template adds when that
message is appended after the generation prompt.
"""

from __future__ import annotations

import json

from calltune.errors import InputError
from calltune.formats.base import ChatFormat, ParseResult, merge_runs
from calltune.formats.generic_parser import parse_generic
from calltune.formats.messages import (ASSISTANT_ROLES, arguments_dict, call_function, last_user_index,
                                       role_of, tool_function, tool_results)
from calltune.formats.sandbox import render_template

_PROBE_ANSWER = "calltune-probe-answer"


class GenericFormat(ChatFormat):
    name = "generic"

    def __init__(self, chat_template: str, special_tokens: dict | None = None):
        if not isinstance(chat_template, str) or "tools" not in chat_template:
            raise InputError("the chat template does not accept tools, so the generic format cannot show the "
                             "model its tools; use a base model with a tool-aware template or model.format "
                             "functiongemma", field="model.format")
        self._template = chat_template
        self._special_tokens = dict(special_tokens or {})
        # Found once, here, so that parse() never has to render (and so never raises).
        self._stop_strings = self._find_stop_strings()

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "GenericFormat":
        template = tokenizer.chat_template
        if isinstance(template, dict):  # named templates: prefer the tool-use one
            template = template.get("tool_use") or template.get("default")
        return cls(template, tokenizer.special_tokens_map)

    def render(self, messages, tools=None, add_generation_prompt=False) -> str:
        return render_template(self._template, template_messages(messages), template_tools(tools),
                               add_generation_prompt, **self._special_tokens)

    def segments(self, messages, tools=None) -> list[tuple[str, bool]]:
        full = self.render(messages, tools)
        pieces, pos = [], 0
        for index in range(last_user_index(messages) + 1, len(messages)):
            if role_of(messages[index], index) in ASSISTANT_ROLES:
                start, end = self._output_span(messages, tools, index, full)
                pieces += [(full[pos:start], False), (full[start:end], True)]
                pos = end
        pieces.append((full[pos:], False))
        return merge_runs(pieces)

    def _output_span(self, messages, tools, index: int, full: str) -> tuple[int, int]:
        """Where assistant message `index` sits in `full`: after the generation prompt, without the
        whitespace that follows its end-of-turn token."""
        before = self.render(messages[:index], tools, add_generation_prompt=True)
        through = self.render(messages[: index + 1], tools)
        if not (through.startswith(before) and full.startswith(through)):
            raise InputError(f"the chat template does not render message {index} as a continuation of the "
                             "conversation before it, so its target text cannot be separated",
                             field="chat_template")
        return len(before), max(len(before), len(through.rstrip()))

    def parse(self, text: str) -> ParseResult:
        return parse_generic(text, self.stop_strings)

    @property
    def stop_strings(self) -> list[str]:
        return list(self._stop_strings)

    def _find_stop_strings(self) -> list[str]:
        stops = [self._turn_end_marker(), self._special_tokens.get("eos_token")]
        return [s for i, s in enumerate(stops) if isinstance(s, str) and s and s not in stops[:i]]

    def _turn_end_marker(self) -> str:
        """The token the template writes after an assistant answer (e.g. <|im_end|>, <|eot_id|>)."""
        probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": _PROBE_ANSWER}]
        rendered = self.render(probe)
        after = rendered.split(_PROBE_ANSWER, 1)[1] if _PROBE_ANSWER in rendered else ""
        return after.split()[0] if after.split() else ""

    @property
    def chat_template(self) -> str:
        return self._template


def template_tools(tools: list[dict] | None) -> list[dict] | None:
    """Tools in the OpenAI shape that HF chat templates read."""
    if not tools:
        return None
    return [{"type": "function", "function": tool_function(tool)} for tool in tools]


def template_messages(messages: list[dict]) -> list[dict]:
    """Messages in the shape HF chat templates read: arguments as dicts, tool results as JSON text."""
    converted = []
    for index, message in enumerate(messages):
        role = role_of(message, index)
        if role == "tool":
            converted += [{"role": "tool", "name": name, "content": _result_text(result)}
                          for name, result in tool_results(message)]
        elif role in ASSISTANT_ROLES:
            converted.append(_assistant_message(message))
        else:
            converted.append({"role": "system" if role == "developer" else role,
                              "content": message.get("content") or ""})
    return converted


def _assistant_message(message: dict) -> dict:
    converted = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        converted["tool_calls"] = [
            {"type": "function", "function": {"name": f["name"], "arguments": arguments_dict(f)}}
            for f in map(call_function, message["tool_calls"])]
    return converted


def _result_text(result) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
