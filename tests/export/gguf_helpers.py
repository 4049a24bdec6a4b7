"""The tiny Gemma taught to call a tool, for the GGUF tests.

A random tiny model never emits a tool call, so `teach_tool_calls` fine-tunes every weight of the
tiny FunctionGemma model on a handful of calls (supervised on the model's answer only) until it
reproduces them; the GGUF tests check that llama.cpp's files still call the tool.
"""

from __future__ import annotations

import shutil

SYSTEM = "You are a model that can do function calling with the following functions"
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "city"}},
                       "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "send_email", "description": "Send an email.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string", "description": "recipient"}},
                       "required": ["to"]}}},
]
CALLS = [("What is the weather in Tokyo?", "get_weather", {"location": "Tokyo"}),
         ("What is the weather in Paris today?", "get_weather", {"location": "Paris"}),
         ("Weather in London please", "get_weather", {"location": "London"}),
         ("Send an email to alice", "send_email", {"to": "alice"}),
         ("Please send an email to bob", "send_email", {"to": "bob"})]


def conversation(query: str, name: str | None = None, arguments: dict | None = None) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": query}]
    if name:
        messages.append({"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": name, "arguments": arguments}}]})
    return messages


def _supervised_ids(tokenizer, fmt, messages):
    ids, labels = [], []
    for text, supervised in fmt.segments(messages, TOOLS):
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        labels += piece if supervised else [-100] * len(piece)
    return ids, labels


def teach_tool_calls(src_dir, out_dir, max_steps: int = 200):
    """Full fine-tuning of the tiny model on CALLS until the loss is near zero (~100 steps, ~12 s).

    One thread: on this tiny model more threads only add synchronisation (and 60x slowdowns on a
    loaded machine)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from calltune.formats import get_format

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(src_dir)
    model = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32).train()
    fmt = get_format("functiongemma")
    batch = [_supervised_ids(tokenizer, fmt, conversation(*call)) for call in CALLS]
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(max_steps):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if loss.item() < 0.01:
                break
    finally:
        torch.set_num_threads(threads)
    shutil.copytree(src_dir, out_dir)
    model.eval().save_pretrained(out_dir, safe_serialization=True)
    return out_dir, loss.item()
