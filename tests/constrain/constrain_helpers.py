"""Check texts against a Grammar through both printers: llguidance (Lark) and llama.cpp (GBNF)."""

from __future__ import annotations

import numpy as np

from calltune.constrain import Constraint

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a place.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "create_event", "description": "A calendar event.",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string"},
            "when": {"type": "object", "properties": {"date": {"type": "string"}, "hour": {"type": "number"}},
                     "required": ["date"]},
            "attendees": {"type": "array", "items": {"type": "string"}},
            "private": {"type": "boolean"}},
            "required": ["title", "when"]}}},
    {"name": "ping", "description": "No arguments.", "parameters": {"type": "object", "properties": {}}},
]


# A city's weather: a required string, an enum, an optional integer (the web/grammar.js cases).
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["C", "F"]},
                                                    "days": {"type": "integer"}},
                   "required": ["city"]}}}]

def lark_accepts(grammar, text: str, hf_tokenizer) -> bool:
    """Whether llguidance takes `text` (tokenized, special tokens parsed) whole and may stop there."""
    mask = Constraint(grammar).token_mask(hf_tokenizer)
    for token in hf_tokenizer(text, add_special_tokens=False)["input_ids"]:
        if not mask.consume(token):
            return False
    return mask.matcher.is_accepting()


def gbnf_of(grammar, model) -> str:
    """The grammar's GBNF for a llama.cpp vocabulary (its end and single tokens looked up)."""
    constraint = Constraint(grammar)
    return constraint.gbnf(*constraint.vocabulary_tokens(model.tokenize, model.is_end))


def gbnf_accepts(grammar, text: str, model) -> bool:
    """Whether llama.cpp's grammar sampler takes `text`'s tokens one by one and then allows an
    end of generation (or has consumed a final stop that is not one)."""
    from calltune.engines.libllama import GrammarSampler

    end_tokens = Constraint(grammar).vocabulary_tokens(model.tokenize, model.is_end)[0]
    sampler = GrammarSampler(model, gbnf_of(grammar, model))
    for end in end_tokens:  # llama.cpp allows an end-of-generation token only where the grammar is done
        text = text.removesuffix(end)
    for token in model.tokenize(text):
        if not sampler.allowed(np.array([token], dtype=np.int32), np.zeros(1, dtype=np.float32))[0]:
            return False
        sampler.accept(token)
    ends = [t for t in range(model.n_vocab) if model.is_end(t)][:4]
    return bool(sampler.allowed(np.array(ends, dtype=np.int32), np.zeros(len(ends), dtype=np.float32)).any())


def strict(schema):
    """`schema` with additionalProperties false on every object that declares properties."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def call_errors(calls: list[dict], tools: list[dict]) -> list[str]:
    """Why these parsed calls are not valid calls of `tools` (undeclared name, missing required or
    unknown argument, enum or type broken); [] when every call is valid."""
    import jsonschema

    from calltune.formats.messages import tool_function

    empty = {"type": "object", "properties": {}}
    schemas = {f["name"]: f.get("parameters") or empty for f in map(tool_function, tools)}
    errors = []
    for call in calls:
        if call["name"] not in schemas:
            errors.append(f"undeclared tool {call['name']}")
            continue
        validator = jsonschema.Draft202012Validator(strict(schemas[call["name"]]))
        errors += [f"{call['name']}: {e.message}" for e in validator.iter_errors(call["arguments"])]
    return errors
