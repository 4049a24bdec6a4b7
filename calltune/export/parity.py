"""How close an exported model is to the model it came from, on the project's own prompts.

- logits parity (ONNX fp32 vs PyTorch): max |delta logits| over whole rendered examples, once in
  one pass and once token by token through the KV cache;
- top-1 agreement (a variant vs fp32): share of positions whose argmax token is the same;
- greedy agreement: generate greedily with both, compare the text and the parsed calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from calltune.errors import InputError
from calltune.io import read_jsonl


class CheckSet(NamedTuple):
    """Token ids of whole rendered examples (teacher forcing) and of their prompts (generation)."""
    examples: list[dict]
    full_ids: list[list[int]]
    prompts: list[str]


def load_check_set(examples_path, tokenizer, fmt, limit: int) -> CheckSet:
    """The first `limit` data-contract rows of `examples_path`, rendered with `fmt`."""
    rows = [row for _, row in read_jsonl(examples_path)][:limit]
    if not rows:
        raise InputError("no examples to check the exported model on", path=examples_path)
    full = [tokenizer(fmt.render(r["messages"], r["tools"]), add_special_tokens=False)["input_ids"] for r in rows]
    return CheckSet(rows, full, [fmt.prompt(r["messages"], r["tools"]) for r in rows])


CHUNK = 128  # positions per forward pass in the checks (bounds memory on large vocabularies)


def torch_chunked_logits(model, ids: list[int], chunk: int = CHUNK):
    """PyTorch logits of `ids`, `chunk` positions at a time through the model's KV cache."""
    import torch

    past = None
    with torch.inference_mode():
        for start in range(0, len(ids), chunk):
            out = model(torch.tensor([ids[start:start + chunk]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            yield out.logits[0].float().numpy()


def logits_parity(torch_model, onnx_model, sequences: list[list[int]], decoded: int = 32) -> dict:
    """max |delta| between PyTorch and ONNX logits over whole sequences (ONNX fed CHUNK positions a
    pass), and over the last `decoded` positions fed one token at a time through the KV cache."""
    chunked = stepped = 0.0
    for ids in sequences:
        one_by_one_from = max(1, len(ids) - decoded)
        reference_tail = Tail(len(ids) - one_by_one_from)
        for expected, got in zip(torch_chunked_logits(torch_model, ids), onnx_model.chunked_logits(ids, CHUNK)):
            chunked = max(chunked, float(np.abs(expected - got).max()))
            reference_tail.add(expected)
        decoding = Tail(len(ids) - one_by_one_from)
        for got in onnx_model.chunked_logits(ids, CHUNK, one_by_one_from):
            decoding.add(got)
        stepped = max(stepped, float(np.abs(reference_tail.rows() - decoding.rows()).max()))
    return {"max_abs_diff": chunked, "cached_max_abs_diff": stepped}


class Tail:
    """The last `n` rows of a stream of logit chunks, holding little more than those."""

    def __init__(self, n: int):
        self.n, self.kept, self.count = n, [], 0

    def add(self, chunk: np.ndarray) -> None:
        self.kept.append(chunk)
        self.count += len(chunk)
        while self.count - len(self.kept[0]) >= self.n:
            self.count -= len(self.kept.pop(0))

    def rows(self) -> np.ndarray:
        return np.concatenate(self.kept)[-self.n:]


def top1_agreement(reference, candidates: dict, sequences: list[list[int]]) -> dict[str, dict]:
    """For each candidate (name -> OnnxCausalLM): the share of positions where it picks the same next
    token as `reference`, and the largest logit difference. The reference runs once, in lockstep."""
    same = dict.fromkeys(candidates, 0)
    worst = dict.fromkeys(candidates, 0.0)
    total = 0
    for ids in sequences:
        streams = [model.chunked_logits(ids, CHUNK) for model in candidates.values()]
        for ref, *chunks in zip(reference.chunked_logits(ids, CHUNK), *streams):
            top = ref.argmax(-1)
            total += len(ref)
            for name, chunk in zip(candidates, chunks):
                same[name] += int((chunk.argmax(-1) == top).sum())
                worst[name] = max(worst[name], float(np.abs(ref - chunk).max()))
    return {name: {"top1_agreement": same[name] / total, "max_abs_diff": worst[name], "positions": total}
            for name in candidates}


def greedy_agreement(reference_texts: list[str], candidate, fmt, prompts: list[str], max_new_tokens: int) -> dict:
    """Share of prompts where `candidate` generates the reference's text, and the same calls."""
    same_text = same_calls = 0
    for prompt, expected in zip(prompts, reference_texts, strict=True):
        text = candidate.generate(prompt, max_new_tokens, fmt.stop_strings).text
        same_text += text == expected
        same_calls += fmt.parse(text).calls == fmt.parse(expected).calls
    n = len(prompts)
    return {"same_text": same_text / n, "same_calls": same_calls / n, "prompts": n}


def greedy_texts(engine, fmt, prompts: list[str], max_new_tokens: int) -> list[str]:
    return [engine.generate(prompt, max_new_tokens, fmt.stop_strings).text for prompt in prompts]


def load_torch(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True,
                                                trust_remote_code=False).eval()


def check_format(export_dir: Path, format_name: str):
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    tokenizer = AutoTokenizer.from_pretrained(export_dir, trust_remote_code=False)
    return tokenizer, get_format(format_name, tokenizer=tokenizer)


def check_export(model_dir, export_dir, examples_path, *, format_name: str = "auto", limit: int = 8,
                 max_new_tokens: int = 64, threads: int | None = None) -> dict:
    """ONNX fp32 (export_dir) against PyTorch (model_dir): logits parity and greedy agreement."""
    from calltune.engines.torch_engine import TorchEngine
    from calltune.engines.onnx_engine import OnnxEngine

    tokenizer, fmt = check_format(Path(export_dir), format_name)
    checks = load_check_set(examples_path, tokenizer, fmt, limit)
    reference = TorchEngine(model_dir, threads=threads)
    exported = OnnxEngine(export_dir, threads=threads)
    expected = greedy_texts(reference, fmt, checks.prompts, max_new_tokens)
    return {**logits_parity(reference.model, exported.model, checks.full_ids),
            **greedy_agreement(expected, exported, fmt, checks.prompts, max_new_tokens)}


def check_variants(export_dir, variants_dir, variants, examples_path, *, format_name: str = "auto", limit: int = 8,
                   max_new_tokens: int = 64, threads: int | None = None) -> dict[str, dict]:
    """Each quantized variant against ONNX fp32: top-1 agreement and greedy agreement."""
    from calltune.export.onnx_quantize import VARIANTS
    from calltune.engines.onnx_engine import OnnxEngine

    tokenizer, fmt = check_format(Path(export_dir), format_name)
    checks = load_check_set(examples_path, tokenizer, fmt, limit)
    reference = OnnxEngine(export_dir, threads=threads)
    candidates = {name: OnnxEngine(variants_dir, model_file=VARIANTS[name].file, threads=threads, name=f"onnx-{name}")
                  for name in variants}
    results = top1_agreement(reference.model, {n: c.model for n, c in candidates.items()}, checks.full_ids)
    expected = greedy_texts(reference, fmt, checks.prompts, max_new_tokens)
    for name, candidate in candidates.items():
        results[name].update(greedy_agreement(expected, candidate, fmt, checks.prompts, max_new_tokens))
    return results
