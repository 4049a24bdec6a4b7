"""Examples: the intermediate form every input becomes, its checks, and its canonical record.

An Example is one user query with the calls expected for it (plus optional system text,
earlier messages, tool results and a final answer). Hand-written examples, templates and every
importer produce Examples, so they all pass the same checks before becoming canonical records.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

from calltune.data.records import read_records
from calltune.data.tools import tools_by_name
from calltune.data.validate import instance_errors, raise_if_any
from calltune.errors import InputError
from calltune.params import load_schema

EXAMPLE_SCHEMA = load_schema("examples.schema.json")
_KNOWN_SHOWN = 12


@dataclass
class Example:
    query: str
    calls: list[dict]  # [{"name", "arguments": dict}]
    tools: list[dict]  # OpenAI function tools offered to the model
    path: str
    line: int | None
    system: str | None = None
    history: list[dict] = dataclass_field(default_factory=list)  # examples.jsonl-style messages
    tool_results: list | None = None
    answer: str | None = None
    where: str = ""  # the example's own field in its file, if any ("templates[2]")
    calls_field: str = "calls"  # what the input calls `calls` ("answers" in xLAM)
    # Accepted alternatives, parallel to calls: {argument: [other acceptable values]} per call
    # ("" = may be left out); None when no call has any. See docs/data.md "Accepted alternatives".
    accept: list[dict] | None = None

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)

    def at(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name


def load_examples(path, tools: list[dict]) -> list[Example]:
    """Read examples.jsonl: every line checked against its schema and against `tools`."""
    examples, errors = [], []
    for line, raw in read_records(path):
        example, problems = checked_example(raw, tools, path, line)
        errors.extend(problems)
        if example is not None:
            examples.append(example)
    raise_if_any(errors)
    return examples


def checked_example(raw, tools: list[dict], path, line: int | None) -> tuple[Example | None, list[InputError]]:
    """One examples.jsonl record as an Example, with every problem found in it (the Example is None
    when the record does not even have the schema's shape)."""
    problems = instance_errors(raw, EXAMPLE_SCHEMA, path, line)
    if problems:
        return None, problems
    calls = [{"name": c["name"], "arguments": c["arguments"]} for c in raw["calls"]]
    accept = [c.get("accept", {}) for c in raw["calls"]]
    example = Example(query=raw["query"], calls=calls, tools=tools, path=str(path), line=line,
                      system=raw.get("system"), history=raw.get("history", []),
                      tool_results=raw.get("tool_results"), answer=raw.get("answer"),
                      accept=accept if any(accept) else None)
    return example, example_errors(example)


def example_errors(example: Example) -> list[InputError]:
    """Calls name known tools with valid arguments; results and answer fit the calls."""
    known = tools_by_name(example.tools)
    errors = []
    for i, call in enumerate(example.calls):
        errors += call_errors(call, known, example, example.at(f"{example.calls_field}[{i}]"))
    for i, message in enumerate(example.history):
        errors += _history_errors(message, known, example, example.at(f"history[{i}]"))
    for i, (call, accept) in enumerate(zip(example.calls, example.accept or [])):
        errors += accept_errors(call, accept, known, example, example.at(f"{example.calls_field}[{i}].accept"))
    errors += _shape_errors(example)
    return errors


def accept_errors(call: dict, accept: dict, known: dict[str, dict], example: Example, field: str) -> list[InputError]:
    """Each accepted alternative must be a valid value of its argument; "" (may be left out) only
    for an optional one."""
    tool = known.get(call["name"])
    if tool is None:
        return []  # call_errors reports the unknown tool
    parameters = tool["function"]["parameters"]
    properties, required = parameters.get("properties", {}), set(parameters.get("required", []))
    errors = []
    for key, values in accept.items():
        if key not in properties:
            errors.append(_error(example, f"{field}.{key}", f"{call['name']} has no argument {key!r}"))
            continue
        for j, value in enumerate(values):
            where = f"{field}.{key}[{j}]"
            if value == "" and key in required:
                errors.append(_error(example, where, f"'' (may be left out) but {key!r} is required"))
            elif value != "":
                errors += instance_errors(value, properties[key], example.path, example.line, where)
    return errors


def accepted(example: Example) -> list[dict] | None:
    """The canonical `accept` of a record: per call, {argument: [expected, *alternatives]} where
    "" stands for a left-out argument; None when the example lists no alternatives."""
    if not example.accept or not any(example.accept):
        return None
    canonical = []
    for call, accept in zip(example.calls, example.accept):
        entry = {}
        for key, values in accept.items():
            expected = call["arguments"].get(key, "")
            entry[key] = [expected] + [v for i, v in enumerate(values)
                                       if v != expected and v not in values[:i]]
        canonical.append(entry)
    return canonical


def call_errors(call: dict, known: dict[str, dict], example: Example, field: str) -> list[InputError]:
    tool = known.get(call["name"])
    if tool is None:
        return [_error(example, f"{field}.name", f"unknown tool {call['name']!r} (known: {_names(known)})")]
    return instance_errors(call["arguments"], tool["function"]["parameters"], example.path, example.line,
                           f"{field}.arguments")


def _history_errors(message: dict, known: dict, example: Example, field: str) -> list[InputError]:
    errors = []
    for j, call in enumerate(message.get("tool_calls", [])):
        errors += call_errors(call, known, example, f"{field}.tool_calls[{j}]")
    if message["role"] == "tool" and message["name"] not in known:
        errors.append(_error(example, f"{field}.name", f"unknown tool {message['name']!r} (known: {_names(known)})"))
    return errors


def _shape_errors(example: Example) -> list[InputError]:
    n_calls, results = len(example.calls), example.tool_results
    if example.history and example.history[-1]["role"] == "user":
        return [_error(example, example.at("history"), "history ends with a user message: put it in query")]
    if results is not None and n_calls == 0:
        return [_error(example, example.at("tool_results"), "tool_results without calls")]
    if results is not None and len(results) != n_calls:
        return [_error(example, example.at("tool_results"),
                       f"{len(results)} tool result(s) for {n_calls} call(s): give one per call, in call order")]
    if results is not None and example.answer is None:
        return [_error(example, example.at("answer"), "tool_results need an answer (the reply that uses them)")]
    if results is None and n_calls and example.answer is not None:
        return [_error(example, example.at("answer"), "an answer after calls needs tool_results")]
    return []


def to_record(example: Example, record_id: str, no_call_answer: str) -> dict:
    """The canonical dataset line (see schemas/dataset.schema.json)."""
    messages = [{"role": "system", "content": example.system}] if example.system else []
    messages += [_canonical_message(m) for m in example.history]
    messages.append({"role": "user", "content": example.query})
    if example.calls:
        messages.append(assistant_calls(example.calls))
        for call, result in zip(example.calls, example.tool_results or []):
            messages.append({"role": "tool", "name": call["name"], "content": result})
        if example.answer is not None:
            messages.append({"role": "assistant", "content": example.answer})
    else:
        messages.append({"role": "assistant", "content": example.answer or no_call_answer})
    record = {"id": record_id, "messages": messages, "tools": example.tools,
              "meta": {"source": example.source, "calls": [c["name"] for c in example.calls]}}
    accept = accepted(example)
    if accept is not None:
        record["accept"] = accept
    return record


def assistant_calls(calls: list[dict]) -> dict:
    return {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]}


def _canonical_message(message: dict) -> dict:
    if "tool_calls" not in message:
        return dict(message)
    canonical = assistant_calls(message["tool_calls"])
    if message.get("content"):
        canonical["content"] = message["content"]
    return canonical


def _names(known: dict) -> str:
    names = sorted(known)
    shown = ", ".join(names[:_KNOWN_SHOWN])
    return shown + (f", ... {len(names) - _KNOWN_SHOWN} more" if len(names) > _KNOWN_SHOWN else "") or "none"


def _error(example: Example, field: str, reason: str) -> InputError:
    return InputError(reason, path=example.path, line=example.line, field=field)
