"""Completion-only loss that applies the LM head only where a token is supervised.

Gemma's 262k-token head is ~63% of the 270M model: logits over prompt tokens are wasted work and
memory. We run the decoder body to hidden states, keep the rows whose next token is a target,
and apply the head (and the final logit soft-cap, if the config has one) to those rows only, fused
with the cross entropy a chunk of rows at a time (calltune.train.linear_ce).

Tool-calling prompts also repeat one long head (the tool declarations) in every example. When a
batch shares a prefix, we pack it as one row: the head once, then every example's tail, with
position ids that continue from the head and an attention mask that lets each tail see the head
and itself only. The same function of the weights as the padded batch, in one forward call over
a fraction of the tokens.

Examples that share no head are packed the same way by calltune.train.packing (each example its
own segment, position ids from 0): completion_loss takes such a Packed row as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calltune.train import prefix_attention
from calltune.train.datasets import Batch
from calltune.train.linear_ce import fusable_head, linear_cross_entropy

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


def compile_layers(model) -> int:
    """torch.compile each decoder layer (regional compilation, dynamic shapes): fuses the many
    small kernels (norms, rotary, LoRA adds) a 270M model's step is made of. Returns the count."""
    layers = lm_parts(model).body.layers
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


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


@dataclass(frozen=True)
class Packed:
    """Several sequences laid out as one row. A batch with a shared head: the head once (segment
    -1, seen by every tail), then each row's tail. Examples packed back to back
    (calltune.train.packing): segment i is example i, with position ids from 0."""

    input_ids: torch.Tensor  # [1, L]
    positions: torch.Tensor  # [1, L] each tail continues from the head's end
    segments: torch.Tensor  # [L] -1 for the head, i for row i's tail
    targets: torch.Tensor  # [L]

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def n_targets(self) -> int:
        return int(self.targets.sum())

    def to(self, device) -> "Packed":
        return Packed(self.input_ids.to(device), self.positions.to(device), self.segments.to(device),
                      self.targets.to(device))


def pack_shared_prefix(batch: Batch, prefix: int) -> Packed:
    ids, targets, device = batch.input_ids, batch.targets, batch.input_ids.device
    pieces = [(ids[0, :prefix], targets[0, :prefix], torch.arange(prefix, device=device),
               torch.full((prefix,), -1, device=device))]
    for row, length in enumerate(batch.lengths.tolist()):
        pieces.append((ids[row, prefix:length], targets[row, prefix:length],
                       torch.arange(prefix, length, device=device), torch.full((length - prefix,), row, device=device)))
    packed_ids, packed_targets, positions, segments = (torch.cat(p) for p in zip(*pieces))
    return Packed(packed_ids[None], positions[None], segments, packed_targets)


def attention_masks(packed: Packed, config, dtype: torch.dtype):
    """Who may attend to whom in the packed row: the head causally, each tail to the head and
    causally to itself, never to another tail; sliding-window layers also limit the distance.
    Returns the per-layer-type dict Gemma 3 / Qwen 2 accept, or one 4D mask for other models."""
    q_pos, k_pos = packed.positions[0, :, None], packed.positions[0, None, :]
    k_seg = packed.segments[None, :]
    visible = ((k_seg == -1) | (k_seg == packed.segments[:, None])) & (k_pos <= q_pos)
    masks = {"full_attention": visible}
    if "sliding_attention" in (getattr(config, "layer_types", None) or []):
        masks["sliding_attention"] = visible & (q_pos - k_pos < config.sliding_window)
    if config._attn_implementation == "eager":  # eager adds the mask to the scores
        masks = {k: torch.zeros((), dtype=dtype, device=m.device).masked_fill(~m, torch.finfo(dtype).min)
                 for k, m in masks.items()}
    masks = {k: m[None, None] for k, m in masks.items()}
    return masks if len(masks) > 1 else masks["full_attention"]


def can_pack(body) -> bool:
    """Custom 4D masks work with the eager and SDPA attention implementations."""
    return body.config._attn_implementation in ("eager", "sdpa")


def packed_hidden(body, packed: Packed) -> torch.Tensor:
    """Hidden states [1, L, H] of a packed row, each segment attending as attention_masks says."""
    if splits_attention(body, packed):
        layout = prefix_attention.layouts(packed.segments, packed.positions[0], body.config.sliding_window)
        with prefix_attention.prefix_attention_for(body.config):
            return body(input_ids=packed.input_ids, attention_mask=layout, position_ids=packed.positions,
                        use_cache=False).last_hidden_state
    masks = attention_masks(packed, body.config, body.get_input_embeddings().weight.dtype)
    return body(input_ids=packed.input_ids, attention_mask=masks, position_ids=packed.positions,
                use_cache=False).last_hidden_state


def splits_attention(body, packed: Packed) -> bool:
    """Whether a shared-head row takes calltune.train.prefix_attention: on CPU, where SDPA's dense
    masked kernel is the cost (CUDA keeps it), for models that take per-layer-type masks (Gemma 3),
    without attention soft-capping or dropout, and not under gradient checkpointing (its recompute
    runs outside the forward call that switches the attention function)."""
    config = body.config
    return (packed.input_ids.device.type == "cpu" and config._attn_implementation == "sdpa"
            and bool(packed.segments[0] == -1)
            and "sliding_attention" in (getattr(config, "layer_types", None) or [])
            and not getattr(config, "attn_logit_softcapping", None) and not getattr(config, "attention_dropout", 0)
            and not getattr(body, "gradient_checkpointing", False))


def body_hidden(body, batch: Batch | Packed, prefix: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden [R, L, H], input ids [R, L], targets [R, L]): a row packed already, the padded batch
    as is (prefix 0), or the batch packed into one row around its shared head."""
    if isinstance(batch, Packed):
        return packed_hidden(body, batch), batch.input_ids, batch.targets[None]
    if prefix == 0:
        hidden = body(input_ids=batch.input_ids, use_cache=False).last_hidden_state
        return hidden, batch.input_ids, batch.targets
    packed = pack_shared_prefix(batch, prefix)
    return packed_hidden(body, packed), packed.input_ids, packed.targets[None]


def target_logits(parts: LMParts, rows: torch.Tensor) -> torch.Tensor:
    logits = parts.head(rows).float()
    if parts.softcap:
        logits = torch.tanh(logits / parts.softcap) * parts.softcap
    return logits


def completion_loss(model, batch: Batch | Packed, share_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """(sum of target-token cross entropies, number of target tokens) for one padded batch, or for
    one packed row (calltune.train.packing; share_prefix does not apply to it)."""
    parts = lm_parts(model)
    packed = isinstance(batch, Packed)
    if packed and not can_pack(parts.body):
        raise ValueError(f"packed rows need eager or sdpa attention, not {parts.body.config._attn_implementation}")
    prefix = shared_prefix_len(batch) if not packed and share_prefix and can_pack(parts.body) else 0
    hidden, ids, targets = body_hidden(parts.body, batch, prefix)
    predicts_target = targets[:, 1:]  # a segment's first token is never a target, so none is predicted across segments
    rows, labels = hidden[:, :-1][predicts_target], ids[:, 1:][predicts_target]
    if fusable_head(parts.head):
        return linear_cross_entropy(rows, parts.head.weight, labels, parts.softcap), int(labels.numel())
    return F.cross_entropy(target_logits(parts, rows), labels, reduction="sum"), int(labels.numel())


def full_logits_loss(model, batch: Batch) -> tuple[torch.Tensor, int]:
    """Reference: the model's own forward over every position, masked to the targets."""
    logits = model(input_ids=batch.input_ids, use_cache=False).logits.float()
    predicts_target = batch.targets[:, 1:]
    labels = batch.input_ids[:, 1:][predicts_target]
    return F.cross_entropy(logits[:, :-1][predicts_target], labels, reduction="sum"), int(labels.numel())
