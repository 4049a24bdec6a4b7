"""Canonical examples -> token ids + completion mask, cut at max_seq_len, in length-grouped batches.

The text of an example is `fmt.segments(messages, tools)`: runs of (text, supervised). We tokenize
the whole render once (so the prompt tokens are exactly what inference sees) and mark a token as a
target when any of its characters lies in a supervised run.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from itertools import accumulate

import torch

from calltune.errors import InputError
from calltune.io import read_jsonl


@dataclass(frozen=True)
class TokenizedExample:
    id: str
    input_ids: tuple[int, ...]
    targets: tuple[bool, ...]  # True where the token is supervised (predicted from the tokens before it)
    group: str = ""  # examples with the same tools and system text share a long prompt prefix

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        return sum(self.targets)


@dataclass
class CutReport:
    """Examples longer than max_seq_len: cut ones keep their head, dropped ones lost every target."""

    max_seq_len: int
    cut: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    tokens_cut: int = 0
    targets_cut: int = 0

    def describe(self, split: str) -> str:
        return (f"{split}: {len(self.cut)} example(s) longer than max_seq_len={self.max_seq_len} were cut "
                f"({self.tokens_cut} tokens, {self.targets_cut} target tokens), {len(self.dropped)} dropped "
                f"(no target token left): {', '.join((self.cut + self.dropped)[:8])}")

    def as_dict(self) -> dict:
        return {"max_seq_len": self.max_seq_len, "cut": self.cut, "dropped": self.dropped,
                "tokens_cut": self.tokens_cut, "targets_cut": self.targets_cut}


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, L] right-padded
    targets: torch.Tensor  # [B, L] bool, False on padding
    lengths: torch.Tensor  # [B] real tokens per row

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def n_targets(self) -> int:
        return int(self.targets.sum())

    def to(self, device) -> "Batch":
        return Batch(self.input_ids.to(device), self.targets.to(device), self.lengths)


def supervised_chars(segments: list[tuple[str, bool]]) -> tuple[str, list[int]]:
    """The full text and a prefix sum over characters of 'is supervised' (length len(text) + 1)."""
    flags = [supervised for text, supervised in segments for _ in text]
    return "".join(text for text, _ in segments), [0, *accumulate(flags)]


def tokenize_segments(segments, tokenizer) -> tuple[list[int], list[bool]]:
    text, sup = supervised_chars(segments)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    targets = [end > start and sup[end] - sup[start] > 0 for start, end in enc["offset_mapping"]]
    if targets:
        targets[0] = False  # nothing precedes the first token, so it cannot be predicted
    return list(enc["input_ids"]), targets


def prefix_group(messages: list[dict], tools: list[dict]) -> str:
    """Examples with identical tools and system text render the same (long) prompt head."""
    system = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    blob = json.dumps([tools, system], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


def _segments(row, fmt, path, lineno):
    if not isinstance(row, dict):
        raise InputError("each line must be a JSON object", path=path, line=lineno)
    for key in ("messages", "tools"):
        if not isinstance(row.get(key), list):
            raise InputError(f"missing or not a list: {key!r}", path=path, line=lineno, field=key)
    try:
        return fmt.segments(row["messages"], row["tools"])
    except InputError as e:
        raise InputError(e.reason, path=path, line=lineno, field=e.field or "messages") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot render this example: {e}", path=path, line=lineno, field="messages") from None


def cut_example(ex: TokenizedExample, max_seq_len: int, report: CutReport) -> TokenizedExample | None:
    if len(ex) <= max_seq_len:
        return ex
    kept = TokenizedExample(ex.id, ex.input_ids[:max_seq_len], ex.targets[:max_seq_len], ex.group)
    report.tokens_cut += len(ex) - max_seq_len
    report.targets_cut += ex.n_targets - kept.n_targets
    if kept.n_targets == 0:
        report.dropped.append(ex.id)
        return None
    report.cut.append(ex.id)
    return kept


def tokenize_split(path, fmt, tokenizer, max_seq_len: int) -> tuple[list[TokenizedExample], CutReport]:
    """Read a canonical JSONL split and tokenize it; bad lines raise InputError with their number."""
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("training needs a fast tokenizer (tokenizer.json) for character offsets", path=path)
    report = CutReport(max_seq_len)
    examples = []
    for lineno, row in read_jsonl(path):
        segments = _segments(row, fmt, path, lineno)
        ids, targets = tokenize_segments(segments, tokenizer)
        ex = TokenizedExample(str(row.get("id", f"line-{lineno}")), tuple(ids), tuple(targets),
                              prefix_group(row["messages"], row["tools"]))
        if ex.n_targets == 0:
            raise InputError("example has no supervised (assistant) tokens", path=path, line=lineno,
                             field="messages")
        if (kept := cut_example(ex, max_seq_len, report)) is not None:
            examples.append(kept)
    return examples, report


def epoch_rng(seed: int, epoch: int) -> random.Random:
    """The generator behind an epoch's batches: a function of (seed, epoch) only."""
    return random.Random(seed * 100_003 + epoch)


def length_grouped_batches(examples: list[TokenizedExample], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of similar length from the same prefix group, in a seeded order per epoch.

    Shuffling before the stable sort breaks length ties differently each epoch; the batch order
    is shuffled too. Everything is a function of (seed, epoch), so a resumed run sees the same order.
    (calltune.train.packing forms batches across prefix groups instead.)
    """
    rng = epoch_rng(seed, epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    order.sort(key=lambda i: (examples[i].group, len(examples[i])))
    batches, start = [], 0
    while start < len(order):
        group = examples[order[start]].group
        end = start
        while end < len(order) and end - start < batch_size and examples[order[end]].group == group:
            end += 1
        batches.append(order[start:end])
        start = end
    rng.shuffle(batches)
    return batches


def collate(examples: list[TokenizedExample], pad_id: int) -> Batch:
    """Right-pad to the longest row. Under causal attention right padding never reaches a real
    token, so no attention mask is needed."""
    width = max(len(ex) for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, ex in enumerate(examples):
        ids[row, : len(ex)] = torch.tensor(ex.input_ids, dtype=torch.long)
        targets[row, : len(ex)] = torch.tensor(ex.targets, dtype=torch.bool)
    return Batch(ids, targets, torch.tensor([len(ex) for ex in examples]))
