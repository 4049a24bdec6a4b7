"""Padding-free packing of examples that share no prompt head: several examples in one row.

length_grouped_batches keeps prompt groups (same tools and system text) apart, so that a batch's
shared head is computed once (loss.pack_shared_prefix). When every example declares its own tools
the groups are tiny and the batches degenerate to one example each. Packing forms batches across
groups instead and lays each micro-batch out as ONE row: the examples back to back, position ids
restarting at 0 for each, attention block-diagonal and causal (loss.attention_masks: segment i
sees segment i only; sliding-window layers are also limited by distance). The LM head still runs
at target positions only. No padding, and the same function of the weights as one example at a
time (tests/train/test_packing.py checks loss and gradients).

Knobs (params.yaml train.*):
    packing      true: batches across groups, one packed row each; padded: the same batches,
                 right-padded (no custom mask: the fast path on a GPU); false: length_grouped_batches
                 as before; auto: pack only when grouping leaves batches less than half as full
                 as they could be (see pack_helps), so data with one tool list is unchanged.
    pack_tokens  most tokens in a packed row (0 = no limit beyond batch_size examples). The mask is
                 dense, so attention over a row costs the square of its length; a row is closed
                 before it would pass the budget (an example longer than it rides alone).
"""

from __future__ import annotations

import torch

from calltune.errors import InputError
from calltune.train.datasets import TokenizedExample, epoch_rng, length_grouped_batches
from calltune.train.length import ceil_div
from calltune.train.loss import Packed


def packed_batches(examples: list[TokenizedExample], batch_size: int, max_tokens: int, seed: int,
                   epoch: int) -> list[list[int]]:
    """Micro-batches across prompt groups: length-sorted (ties broken by a seeded shuffle), at most
    `batch_size` examples and `max_tokens` tokens (0 = no token limit) each, in a seeded order.

    A function of (seed, epoch), so a resumed run sees the same batches. The sorted lengths are the
    same every epoch, so the number of batches is too."""
    rng = epoch_rng(seed, epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    order.sort(key=lambda i: len(examples[i]))
    batches, current, tokens = [], [], 0
    for i in order:
        n = len(examples[i])
        if current and (len(current) == batch_size or (max_tokens and tokens + n > max_tokens)):
            batches.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += n
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def pack_examples(examples: list[TokenizedExample]) -> Packed:
    """One row: the examples back to back, segment i = example i, positions 0..len-1 for each.

    A segment's first token is never a target (nothing of its own precedes it), so no position
    predicts across a boundary."""
    ids = torch.tensor([t for ex in examples for t in ex.input_ids], dtype=torch.long)
    positions = torch.cat([torch.arange(len(ex)) for ex in examples])
    segments = torch.cat([torch.full((len(ex),), i) for i, ex in enumerate(examples)])
    targets = torch.tensor([t and j > 0 for ex in examples for j, t in enumerate(ex.targets)], dtype=torch.bool)
    return Packed(ids[None], positions[None], segments, targets)


def pack_helps(examples: list[TokenizedExample], batch_size: int, seed: int) -> bool:
    """True when prompt grouping leaves batches less than half as full as batches of any examples
    would be: mean group-batch size < half of len(examples) / ceil(len(examples) / batch_size).

    One prompt group never qualifies (its batches are exactly that full)."""
    if len(examples) < 2 or batch_size < 2:
        return False
    grouped = len(length_grouped_batches(examples, batch_size, seed, 0))
    return grouped > 2 * ceil_div(len(examples), batch_size)


def resolve_packing(mode, examples: list[TokenizedExample], batch_size: int, seed: int, supported: bool) -> bool | str:
    """train.packing (auto | true | padded | false) -> True (packed rows), "padded" or False.
    `supported`: the model's attention takes custom 4D masks (eager or sdpa); true without it is
    an InputError. "padded" forms the same batches across prompt groups as true but right-pads
    them instead of packing: no custom mask, so CUDA keeps its fused causal attention kernel
    (a dense mask over an 8k-token packed row ran at 16k tokens/s on an H200, see bench/README.md)."""
    if mode is False or mode == "false":
        return False
    if mode == "padded":
        return "padded"
    if mode is True or mode == "true":
        if not supported:
            raise InputError("packing needs eager or sdpa attention (a custom 4D mask); set train.packing: "
                             "auto, padded or false", field="train.packing")
        return True
    if mode != "auto":
        raise InputError(f"train.packing must be auto, true, padded or false, not {mode!r}", field="train.packing")
    return supported and pack_helps(examples, batch_size, seed)
