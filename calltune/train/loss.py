"""Completion-only loss that applies the LM head only where a token is supervised.

Gemma's 262k-token head is ~63% of the 270M model: logits over prompt tokens are wasted work and
memory. We run the decoder body to hidden states, keep the rows whose next token is a target,
and apply the head (and the final logit soft-cap, if the config has one) to those rows only.

Tool-calling prompts also repeat one long head (the tool declarations) in every example. When a
batch shares a prefix, the body runs it once with batch size 1 and the rows continue from its
key/value cache: the same function of the weights (gradients flow back through the cache), with
a fraction of the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calltune.train.datasets import Batch

MIN_SHARED_PREFIX = 32  # shorter common heads are not worth a second forward call


@dataclass(frozen=True)
class LMParts:
    body: torch.nn.Module  # decoder: input_ids -> last_hidden_state
    head: torch.nn.Module  # hidden -> vocabulary logits
    softcap: float | None


def lm_parts(model) -> LMParts:
    """Body, head and soft-cap of a causal LM, through a PEFT wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return LMParts(base.get_decoder(), base.get_output_embeddings(),
                   getattr(base.config, "final_logit_softcapping", None))


def shared_prefix_len(batch: Batch) -> int:
    """Length of the head every row shares, ending before the first target's context position."""
    ids, lengths = batch.input_ids, batch.lengths
    if ids.shape[0] < 2:
        return 0
    width = int(lengths.min())
    same = (ids[:, :width] == ids[:1, :width]).all(dim=0)
    common = int(same.logical_not().nonzero()[0]) if not bool(same.all()) else width
    first_target = int(batch.targets.float().argmax(dim=1).min())
    prefix = min(common, first_target - 1)  # the row predicting the first target stays in the suffix
    return prefix if prefix >= MIN_SHARED_PREFIX else 0


def _new_cache(config):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=config)
    except TypeError:  # transformers versions whose DynamicCache takes no config
        return DynamicCache()


def _expand_cache(cache, batch_size: int) -> None:
    """Broadcast a batch-1 cache to batch_size rows (a view: gradients sum back to the one prefix)."""
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            layer.keys = layer.keys.expand(batch_size, *layer.keys.shape[1:])
            layer.values = layer.values.expand(batch_size, *layer.values.shape[1:])
        return
    for i, (k, v) in enumerate(zip(cache.key_cache, cache.value_cache)):
        cache.key_cache[i] = k.expand(batch_size, *k.shape[1:])
        cache.value_cache[i] = v.expand(batch_size, *v.shape[1:])


def body_hidden(body, input_ids: torch.Tensor, prefix_len: int = 0) -> torch.Tensor:
    """Last hidden states of positions prefix_len.. (all positions when prefix_len is 0)."""
    if prefix_len == 0:
        return body(input_ids=input_ids, use_cache=False).last_hidden_state
    rows, width = input_ids.shape
    device = input_ids.device
    cache = _new_cache(body.config)
    head_pos = torch.arange(prefix_len, device=device)
    body(input_ids=input_ids[:1, :prefix_len], past_key_values=cache, use_cache=True,
         cache_position=head_pos, position_ids=head_pos[None])
    _expand_cache(cache, rows)
    tail_pos = torch.arange(prefix_len, width, device=device)
    out = body(input_ids=input_ids[:, prefix_len:], past_key_values=cache, use_cache=True,
               cache_position=tail_pos, position_ids=tail_pos[None].expand(rows, -1))
    return out.last_hidden_state


def target_logits(parts: LMParts, rows: torch.Tensor) -> torch.Tensor:
    logits = parts.head(rows).float()
    if parts.softcap:
        logits = torch.tanh(logits / parts.softcap) * parts.softcap
    return logits


def completion_loss(model, batch: Batch, share_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """(sum of target-token cross entropies, number of target tokens) for one batch."""
    parts = lm_parts(model)
    prefix = 0
    if share_prefix and not getattr(parts.body, "gradient_checkpointing", False):
        prefix = shared_prefix_len(batch)
    hidden = body_hidden(parts.body, batch.input_ids, prefix)
    ids, targets = batch.input_ids[:, prefix:], batch.targets[:, prefix:]
    predicts_target = targets[:, 1:]
    logits = target_logits(parts, hidden[:, :-1][predicts_target])
    labels = ids[:, 1:][predicts_target]
    return F.cross_entropy(logits, labels, reduction="sum"), int(labels.numel())


def full_logits_loss(model, batch: Batch) -> tuple[torch.Tensor, int]:
    """Reference: the model's own forward over every position, masked to the targets."""
    logits = model(input_ids=batch.input_ids, use_cache=False).logits.float()
    predicts_target = batch.targets[:, 1:]
    labels = batch.input_ids[:, 1:][predicts_target]
    return F.cross_entropy(logits[:, :-1][predicts_target], labels, reduction="sum"), int(labels.numel())
