"""Attention for a shared-head packed row that computes only the pairs the mask lets through.

A batch that shares its tool declarations is packed as one row (calltune.train.loss): the head
once, then every example's tail; each tail sees the head and itself. With a dense [L, L] mask,
SDPA's CPU kernel computes all L² scores and throws most away: for the starter (a ~985-token head,
14 tails of ~60 tokens) that is ~3.3M pairs where ~1.4M are visible, and attention was ~37% of a
CPU training step in a profile. Here the same attention is two SDPA calls:

- the head: causal over itself (`is_causal`, or a band mask on sliding-window layers);
- the tails, as a padded batch [B, T]: each tail's queries over the head's keys (on a
  sliding-window layer only the last `window - 1` of them can be in reach) and its own keys,
  causally;

then the outputs are laid back in the row's order. The same function of the inputs as the dense
mask (float rounding aside; tests compare losses and gradients). It runs where the dense kernel is
the cost, on CPU; CUDA keeps the fused dense kernel (measured there in bench/README.md).

Hooked in as a transformers attention function for the duration of one forward call
(`prefix_attention_for`): each layer receives a `PrefixLayout` in place of its mask tensor.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "calltune_prefix"


@dataclass(frozen=True)
class PrefixLayout:
    """Where the head and the tails sit in the packed row, and the tails' masks (per layer type)."""

    prefix: int  # head length P
    gather: torch.Tensor  # [B * T] index into the tail region (row positions P..L-1) per padded slot
    valid: torch.Tensor  # [B, T] which padded slots hold a token
    window: int | None  # sliding window of this layer type (None: full attention)
    key_start: int  # first head key a tail can reach (0, or P - window + 1 on sliding layers)
    tail_mask: torch.Tensor  # [B, 1, T, P - key_start + T]
    head_mask: torch.Tensor | None  # [P, P] band mask on sliding layers whose head is longer than the window


def layouts(segments: torch.Tensor, positions: torch.Tensor, window: int | None) -> dict[str, PrefixLayout]:
    """The layouts of a packed row with a shared head (segments -1 then 0..B-1 in order) for its
    full-attention layers and, when the model has them, its sliding-window layers."""
    prefix = int((segments == -1).sum())
    tails = segments[prefix:]
    lengths = torch.bincount(tails)
    n_rows, width = int(lengths.numel()), int(lengths.max())
    slot = torch.arange(width, device=segments.device)
    valid = slot[None, :] < lengths[:, None]
    starts = torch.cumsum(lengths, 0) - lengths
    gather = torch.where(valid, starts[:, None] + slot[None, :], torch.zeros_like(valid, dtype=torch.long))
    q_pos = torch.where(valid, positions[prefix:][gather], prefix + slot[None, :])  # [B, T]
    own = (slot[None, :] <= slot[:, None])[None] & valid[:, None, :]  # [B, T(query), T(key)] causal in the tail
    out = {"full_attention": _layout(prefix, gather, valid, None, 0, q_pos, own)}
    if window:
        start = max(0, prefix - window + 1)
        out["sliding_attention"] = _layout(prefix, gather, valid, window, start, q_pos, own)
    return out


def _layout(prefix, gather, valid, window, key_start, q_pos, own) -> PrefixLayout:
    k_pos = torch.arange(key_start, prefix, device=q_pos.device)
    head_keys = torch.ones(q_pos.shape + k_pos.shape, dtype=torch.bool, device=q_pos.device)
    head_mask = None
    if window:
        head_keys = q_pos[:, :, None] - k_pos[None, None, :] < window
        t_pos = q_pos[:, None, :]  # the tail's own keys sit at the tail's positions
        own = own & (q_pos[:, :, None] - t_pos < window)
        if prefix > window:
            i = torch.arange(prefix, device=q_pos.device)
            head_mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)
    tail_mask = torch.cat([head_keys, own], dim=2)[:, None]
    return PrefixLayout(prefix, gather.reshape(-1), valid, window, key_start, tail_mask, head_mask)


def prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query [1, H, L, D], key/value [1, Hkv, L, D]
    -> ([1, L, H, D], None), with `attention_mask` a PrefixLayout."""
    layout: PrefixLayout = attention_mask
    if dropout or kwargs.get("softcap"):
        raise ValueError("prefix attention supports neither attention dropout nor soft-capping")
    gqa = query.shape[1] != key.shape[1]
    p = layout.prefix
    if layout.head_mask is None:
        head = F.scaled_dot_product_attention(query[:, :, :p], key[:, :, :p], value[:, :, :p], is_causal=True,
                                              scale=scaling, enable_gqa=gqa)
    else:
        head = F.scaled_dot_product_attention(query[:, :, :p], key[:, :, :p], value[:, :, :p],
                                              attn_mask=layout.head_mask, scale=scaling, enable_gqa=gqa)
    rows, width = layout.valid.shape

    def tails_of(x):  # [1, h, L, D] -> [B, h, T, D], padded slots filled from the tail region's first token
        t = x[0, :, p:].index_select(1, layout.gather)
        return t.view(x.shape[1], rows, width, x.shape[-1]).transpose(0, 1)

    def with_head(x):
        reach = x[:, :, layout.key_start:p].expand(rows, -1, -1, -1)
        return torch.cat([reach, tails_of(x)], dim=2)

    tail = F.scaled_dot_product_attention(tails_of(query), with_head(key), with_head(value),
                                          attn_mask=layout.tail_mask, scale=scaling, enable_gqa=gqa)
    tail = tail.transpose(1, 2)[layout.valid]  # [sum of tail lengths, H, D], in the row's order
    return torch.cat([head[0].transpose(0, 1), tail], dim=0)[None], None


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, prefix_attention)


@contextlib.contextmanager
def prefix_attention_for(config):
    """Layers of `config`'s model use prefix_attention inside the block (one forward call)."""
    register()
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
