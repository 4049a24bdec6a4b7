"""Helpers for the train tests: a small canonical tool-calling dataset and params for tiny runs."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "city name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "temperature unit"}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "send_email", "description": "Send an email.",
        "parameters": {"type": "object", "properties": {
            "to": {"type": "string", "description": "recipient"},
            "subject": {"type": "string", "description": "subject line"}},
            "required": ["to", "subject"]}}},
    {"type": "function", "function": {
        "name": "calculate", "description": "Evaluate a math expression.",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string", "description": "the expression"}}, "required": ["expression"]}}},
]
SYSTEM = "You are a model that can do function calling with the following functions"
CITIES = ["Tokyo", "Paris", "London", "Berlin", "New York"]
PEOPLE = ["alice", "bob", "mom"]


def _call(name: str, arguments: dict) -> dict:
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def _exchange(i: int, rng: random.Random) -> tuple[str, dict]:
    kind = i % 4
    if kind == 0:
        city = rng.choice(CITIES)
        return f"What is the weather in {city} today?", _call("get_weather", {"location": city})
    if kind == 1:
        who = rng.choice(PEOPLE)
        return f"Send an email to {who} about the meeting", _call("send_email", {"subject": "meeting", "to": who})
    if kind == 2:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"Please calculate {a} multiply {b}", _call("calculate", {"expression": f"{a} * {b}"})
    return "Remind me to call mom tomorrow", {"role": "assistant",
                                             "content": "Sorry, I can't help with that using the tools I have."}


def canonical_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        query, answer = _exchange(i, rng)
        rows.append({"id": f"ex-{seed}-{i:04d}", "tools": TOOLS,
                     "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": query}, answer],
                     "meta": {"source": f"test:{i}", "calls": []}})
    return rows


def heterogeneous_rows(n: int, seed: int = 0) -> list[dict]:
    """canonical_rows, but every row declares its own tool list, as a corpus of mixed sources does:
    the tool it calls (or any one, for a no-call row) and a short distractor of its own, in a random
    order. n rows, n prompt groups."""
    rng = random.Random(seed + 1000)
    rows = canonical_rows(n, seed)
    for i, row in enumerate(rows):
        extra = {"type": "function", "function": {
            "name": f"lookup_{seed}_{i}", "description": "Look up a record" + " in the archive" * rng.randint(0, 4),
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}}
        called = [c["function"]["name"] for c in row["messages"][-1].get("tool_calls", [])]
        needed = [t for t in TOOLS if t["function"]["name"] in called] or [rng.choice(TOOLS)]
        row["tools"] = rng.sample(needed + [extra], 2)
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_params(**train_overrides) -> dict:
    """The repo's params.yaml with a short, fast train block for tiny models."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = copy.deepcopy(params)
    params["train"].update({"backend": "torch", "device": "cpu", "dtype": "float32", "epochs": 2,
                            "batch_size": 4, "grad_accum": 1, "lr": 5e-3, "warmup_steps": 1, "max_steps": 0,
                            "eval_every": 2, "save_every": 2, "patience": 0, "resume": False, "max_seq_len": 1024,
                            "min_steps": 0, "max_minutes": 0})
    params["train"]["lora"] = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    params["train"].update(train_overrides)
    params["model"]["format"] = "auto"
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path
