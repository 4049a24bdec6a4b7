"""Metrics of a canonical dataset: what it calls, how often it calls nothing or several tools,
and how long its examples are in tokens of the base model's tokenizer, rendered in its format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from calltune.errors import InputError


def dataset_stats(records: list[dict], fmt, tokenizer) -> dict:
    """Flat numeric metrics (dvc metrics show friendly). `fmt` is a calltune.formats format."""
    calls = [r["meta"]["calls"] for r in records]
    stats = {
        "n_examples": len(records),
        "n_tools": len({t["function"]["name"] for r in records for t in r["tools"]}),
        "no_call_share": _share(not c for c in calls),
        "parallel_share": _share(len(c) > 1 for c in calls),
        "multi_turn_share": _share(sum(m["role"] == "user" for m in r["messages"]) > 1 for r in records),
        "tool_result_share": _share(any(m["role"] == "tool" for m in r["messages"]) for r in records),
    }
    stats.update(token_stats(records, fmt, tokenizer))
    stats.update({f"calls_{name}": n for name, n in sorted(Counter(n for c in calls for n in c).items())})
    return stats


def token_stats(records: list[dict], fmt, tokenizer) -> dict:
    """mean/p50/p95/max token lengths of prompt (unsupervised), completion (supervised) and total."""
    if not records:
        return {}
    rendered = [fmt.segments(r["messages"], r["tools"]) for r in records]
    totals = _lengths(tokenizer, ["".join(text for text, _ in segments) for segments in rendered])
    supervised = [[text for text, target in segments if target] for segments in rendered]
    flat = _lengths(tokenizer, [text for texts in supervised for text in texts])
    completions, start = [], 0
    for texts in supervised:
        completions.append(sum(flat[start:start + len(texts)]))
        start += len(texts)
    lengths = {"completion": np.array(completions), "total": np.array(totals)}
    lengths["prompt"] = lengths["total"] - lengths["completion"]
    out = {}
    for part in ("prompt", "completion", "total"):
        values = lengths[part]
        out.update({f"tokens_{part}_mean": round(float(values.mean()), 2),
                    f"tokens_{part}_p50": round(float(np.percentile(values, 50)), 2),
                    f"tokens_{part}_p95": round(float(np.percentile(values, 95)), 2),
                    f"tokens_{part}_max": int(values.max())})
    return out


def load_base_tokenizer(path):
    """The tokenizer the base stage wrote (never remote code)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer_config.json").is_file():
        raise InputError("no tokenizer here: run the base stage first (dvc repro base)", path=path)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def _lengths(tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _share(flags) -> float:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else 0.0
