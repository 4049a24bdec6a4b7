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


def torch_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def cached_logits(onnx_model, ids: list[int], prefill: int) -> np.ndarray:
    """Logits for `ids`: the first `prefill` tokens in one pass, then one token at a time."""
    logits, cache = onnx_model.step(ids[:prefill], onnx_model.empty_cache(), 0)
    rows = [logits]
    for position in range(prefill, len(ids)):
        logits, cache = onnx_model.step(ids[position:position + 1], cache, position)
        rows.append(logits)
    return np.concatenate(rows)


def logits_parity(torch_model, onnx_model, sequences: list[list[int]]) -> dict:
    """max |delta| between PyTorch and ONNX logits, in one pass and through the KV cache."""
    one_pass = cached = 0.0
    for ids in sequences:
        reference = torch_logits(torch_model, ids)
        one_pass = max(one_pass, float(np.abs(onnx_model.logits(ids) - reference).max()))
        cached = max(cached, float(np.abs(cached_logits(onnx_model, ids, len(ids) // 2) - reference).max()))
    return {"max_abs_diff": one_pass, "cached_max_abs_diff": cached}


def top1_agreement(reference, candidate, sequences: list[list[int]]) -> dict:
    """Share of positions where `candidate` picks the same next token as `reference` (both
    OnnxCausalLM), and the largest logit difference."""
    same = total = 0
    worst = 0.0
    for ids in sequences:
        ref, cand = reference.logits(ids), candidate.logits(ids)
        same += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, float(np.abs(ref - cand).max()))
    return {"top1_agreement": same / total, "max_abs_diff": worst, "positions": total}


def greedy_agreement(reference, candidate, fmt, prompts: list[str], max_new_tokens: int) -> dict:
    """Generate greedily with two engines; share of prompts with the same text and the same calls."""
    same_text = same_calls = 0
    for prompt in prompts:
        a = reference.generate(prompt, max_new_tokens, fmt.stop_strings).text
        b = candidate.generate(prompt, max_new_tokens, fmt.stop_strings).text
        same_text += a == b
        same_calls += fmt.parse(a).calls == fmt.parse(b).calls
    n = len(prompts)
    return {"same_text": same_text / n, "same_calls": same_calls / n, "prompts": n}


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
    from calltune.evaluate.engines import TorchEngine
    from calltune.export.onnx_runtime import OnnxEngine

    tokenizer, fmt = check_format(Path(export_dir), format_name)
    checks = load_check_set(examples_path, tokenizer, fmt, limit)
    reference = TorchEngine(model_dir, threads=threads)
    exported = OnnxEngine(export_dir, threads=threads)
    return {**logits_parity(reference.model, exported.model, checks.full_ids),
            **greedy_agreement(reference, exported, fmt, checks.prompts, max_new_tokens)}


def check_variants(export_dir, variants_dir, variants, examples_path, *, format_name: str = "auto", limit: int = 8,
                   max_new_tokens: int = 64, threads: int | None = None) -> dict[str, dict]:
    """Each quantized variant against ONNX fp32: top-1 agreement and greedy agreement."""
    from calltune.export.onnx_quantize import VARIANTS
    from calltune.export.onnx_runtime import OnnxEngine

    tokenizer, fmt = check_format(Path(export_dir), format_name)
    checks = load_check_set(examples_path, tokenizer, fmt, limit)
    reference = OnnxEngine(export_dir, threads=threads)
    results = {}
    for name in variants:
        candidate = OnnxEngine(variants_dir, model_file=VARIANTS[name].file, threads=threads, name=f"onnx-{name}")
        results[name] = {**top1_agreement(reference.model, candidate.model, checks.full_ids),
                         **greedy_agreement(reference, candidate, fmt, checks.prompts, max_new_tokens)}
    return results
