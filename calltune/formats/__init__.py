"""Chat formats: render conversations for training and serving, and parse calls out of model output.

    fmt = get_format("functiongemma")                  # or "generic" / "auto" with tokenizer=
    fmt.render(messages, tools, add_generation_prompt=False) -> str
    fmt.segments(messages, tools) -> [(text, supervised)]   # joins to render(messages, tools)
    fmt.prompt(messages, tools) -> str                 # up to the last user message + generation prompt
    fmt.expected(messages) -> [{"name", "arguments"}]
    fmt.parse(text) -> ParseResult(calls, content, error)   # never raises on model output
    fmt.stop_strings, fmt.chat_template
"""

from __future__ import annotations

from calltune.errors import InputError
from calltune.formats.base import ChatFormat, ParseResult
from calltune.formats.functiongemma import FunctionGemmaFormat
from calltune.formats.generic import GenericFormat

__all__ = ["ChatFormat", "FORMAT_NAMES", "FunctionGemmaFormat", "GenericFormat", "ParseResult", "get_format"]

FORMAT_NAMES = ("auto", "functiongemma", "generic")


def get_format(name: str, tokenizer=None, *, chat_template: str | None = None,
               special_tokens: dict | None = None) -> ChatFormat:
    """The chat format `name`; "generic" and "auto" read the tokenizer (or a template string)."""
    if name == "functiongemma":
        return FunctionGemmaFormat()
    if name == "generic":
        return GenericFormat.from_tokenizer(tokenizer) if tokenizer is not None else \
            GenericFormat(_required_template(chat_template), special_tokens or {})
    if name == "auto":
        return _detect(tokenizer)
    raise InputError(f"unknown chat format {name!r} (expected one of {', '.join(FORMAT_NAMES)})",
                     field="model.format")


def _detect(tokenizer) -> ChatFormat:
    if tokenizer is None:
        raise InputError("format auto needs the base model's tokenizer", field="model.format")
    if "<start_function_call>" in tokenizer.get_vocab():
        return FunctionGemmaFormat()
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and "tools" in template:
        return GenericFormat.from_tokenizer(tokenizer)
    raise InputError("cannot pick a chat format: the base model's tokenizer has no FunctionGemma tokens and "
                     "its chat template does not accept tools; set model.format in params.yaml "
                     "(functiongemma or generic)", field="model.format")


def _required_template(chat_template):
    if not chat_template:
        raise InputError("the generic format needs a tokenizer or a chat template", field="model.format")
    return chat_template
