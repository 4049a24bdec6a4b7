"""The tiny Gemma taught to call a tool, for the GGUF tests.

A random tiny model never emits a tool call, so `teach_tool_calls` fine-tunes every weight of the
tiny FunctionGemma model on a handful of calls (supervised on the model's answer only) until it
reproduces them; the GGUF tests check that llama.cpp's files still call the tool.
`f16_rounding_model` is that model in PyTorch rounding to f16 where llama.cpp does, to measure how
far llama.cpp's logits may fairly be from PyTorch's.
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


def supervised_ids(tokenizer, fmt, messages, tools=None) -> tuple[list[int], list[int]]:
    """(ids, labels) of a conversation rendered by `fmt`: labels -100 outside the model's answers."""
    ids, labels = [], []
    for text, supervised in fmt.segments(messages, tools):
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        labels += piece if supervised else [-100] * len(piece)
    return ids, labels


def fine_tune_until(src_dir, out_dir, sequences, *, max_steps: int, stop_loss: float):
    """Full fine-tuning of every weight of the model in `src_dir` on `sequences` ((ids, labels)
    pairs, one padded batch) until the loss is below `stop_loss`; saved to `out_dir` with the
    source's other files. Returns (out_dir, last loss).

    One thread: on a tiny model more threads only add synchronisation (and 60x slowdowns on a
    loaded machine)."""
    import torch
    from transformers import AutoModelForCausalLM

    width = max(len(ids) for ids, _ in sequences)
    input_ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in sequences])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in sequences])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in sequences])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(max_steps):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if loss.item() < stop_loss:
                break
    finally:
        torch.set_num_threads(threads)
    shutil.copytree(src_dir, out_dir)
    model.eval().save_pretrained(out_dir, safe_serialization=True)
    return out_dir, loss.item()


def teach_tool_calls(src_dir, out_dir, max_steps: int = 200):
    """Fine-tune the tiny model on CALLS until it reproduces them (~100 steps, ~12 s)."""
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    tokenizer = AutoTokenizer.from_pretrained(src_dir)
    fmt = get_format("functiongemma")
    batch = [supervised_ids(tokenizer, fmt, conversation(*call), TOOLS) for call in CALLS]
    return fine_tune_until(src_dir, out_dir, batch, max_steps=max_steps, stop_loss=0.01)


def f16(tensor):
    """`tensor` rounded to float16 (round to nearest even) and back to float32."""
    return tensor.half().float()


def f16_rounding_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Attention with llama.cpp's f16 roundings: K and V as held in its f16 cache, the (pre-scaled)
    query as converted for the f16 x f16 dot products; softmax and sums stay f32."""
    from transformers.models.gemma3.modeling_gemma3 import eager_attention_forward

    return eager_attention_forward(module, f16(query * scaling), f16(key), f16(value), attention_mask,
                                   scaling=1.0, dropout=0.0, **kwargs)


def f16_rounding_model(model_dir, *, f16_weights: bool):
    """The Gemma model of `model_dir` in float32, rounding to f16 where llama.cpp's CPU kernels do:
    the attention above, GELU, and with f16_weights (an f16 GGUF) every matrix and every input of a
    product with one (ggml converts the activations to the weights' type). Norm weights stay f32,
    as the converter keeps 1-D tensors."""
    import torch
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    class F16Gelu(torch.nn.Module):
        """ggml's GELU on the CPU: a table of f16 values indexed by the f16 input; 0 below -10, x above 10."""

        def __init__(self, act):
            super().__init__()
            self.act = act

        def forward(self, x):
            return torch.where(x <= -10, 0.0, torch.where(x >= 10, x, f16(self.act(f16(x)))))

    AttentionInterface.register("llama_cpp_f16", f16_rounding_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register("llama_cpp_f16", eager_mask)  # the causal/sliding masks eager uses
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="llama_cpp_f16").eval()
    for module in list(model.modules()):
        if hasattr(module, "act_fn"):
            module.act_fn = F16Gelu(module.act_fn)
        if f16_weights and isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(lambda _module, args: (f16(args[0]),))
    if f16_weights:
        with torch.no_grad():
            for weight in model.parameters():
                if weight.dim() == 2:
                    weight.copy_(f16(weight))
    return model
