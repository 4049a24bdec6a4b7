"""A shared head run once without gradient, its keys and values cached, the tails trained on top.

A batch whose examples share their tool declarations (calltune.train.loss: the shared head) is
otherwise packed as one row and backpropagated through whole: for the starter (a ~985-token head,
~14 tails of ~60 tokens) the head is about half the row, and its backward pass about a third of a
CPU training step. With `train.prompt_grad: false` the head runs forward only, under no_grad, with
the current weights (adapter included), and its per-layer keys and values are cached; the tails
then run as one padded batch [B, T] that attends to that cache and to itself, causally, exactly as
in the packed row. The loss is the same number (float rounding aside). The gradient is the packed
row's less the paths through the head: how the adapter changes the head's keys and values is not
trained, how the tails read them is. Tested against the packed row with the head's key and value
projections detached (tests/train/test_cached_head.py).

Models whose config names its layer types (Gemma 3: sliding and full attention) get one mask per
type; a sliding layer's cache keeps the head's last `window - 1` positions
(transformers' DynamicSlidingWindowLayer), which is all a tail can reach there.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from calltune.train import prefix_attention


def supports(body) -> bool:
    """Eager or SDPA attention (boolean or additive masks we build), no attention soft-capping or
    dropout, and sliding windows only where the config names its layer types."""
    config = body.config
    types = getattr(config, "layer_types", None) or []
    sliding = getattr(config, "sliding_window", None) and (not types or "sliding_attention" in types)
    return (config._attn_implementation in ("eager", "sdpa")
            and not getattr(config, "attn_logit_softcapping", None) and not getattr(config, "attention_dropout", 0)
            and (not sliding or "sliding_attention" in types)
            and not getattr(body, "gradient_checkpointing", False))


def tail_hidden(body, packed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden [B, T, H], input ids [B, T], targets [B, T]) of each tail of a shared-head packed
    row (calltune.train.loss.Packed: segments -1 for the head, then 0..B-1), the head computed
    without gradient."""
    prefix = int((packed.segments == -1).sum())
    config = body.config
    sliding = "sliding_attention" in (getattr(config, "layer_types", None) or [])
    layouts = prefix_attention.layouts(packed.segments, packed.positions[0], config.sliding_window if sliding else None)
    full = layouts["full_attention"]
    rows, width = full.valid.shape
    cache = DynamicCache(config=config)
    with torch.no_grad():
        body(input_ids=packed.input_ids[:, :prefix], position_ids=packed.positions[:, :prefix],
             past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(rows)
    tail_ids = packed.input_ids[0, prefix:][full.gather].view(rows, width)
    tail_targets = packed.targets[prefix:][full.gather].view(rows, width) & full.valid
    positions = torch.where(full.valid, packed.positions[0, prefix:][full.gather].view(rows, width),
                            prefix + torch.arange(width, device=tail_ids.device)[None, :])
    dtype = body.get_input_embeddings().weight.dtype
    masks = {kind: _for_attention(layout.tail_mask, config, dtype) for kind, layout in layouts.items()}
    hidden = body(input_ids=tail_ids, position_ids=positions, past_key_values=cache, use_cache=True,
                  attention_mask=masks if sliding else masks["full_attention"]).last_hidden_state
    return hidden, tail_ids, tail_targets


def _for_attention(mask: torch.Tensor, config, dtype: torch.dtype) -> torch.Tensor:
    if config._attn_implementation == "eager":  # eager adds the mask to the scores
        return torch.zeros((), dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask
