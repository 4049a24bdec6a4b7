"""A transformers LogitsProcessor that applies one TokenMask per batch row."""

from __future__ import annotations

import numpy as np


class MaskLogitsProcessor:
    """Masks each row's scores with its TokenMask; the row's newest token is consumed first (the
    first call sees the prompt only). Rows a batch keeps padding after they stop are not masked."""

    def __init__(self, masks: list, prompt_length: int):
        self.masks, self.prompt_length = masks, prompt_length

    def __call__(self, input_ids, scores):
        import torch

        if input_ids.shape[1] > self.prompt_length:
            for mask, token in zip(self.masks, input_ids[:, -1].tolist()):
                mask.consume(token)
        allowed = np.stack([mask.allowed(scores.shape[-1]) for mask in self.masks])
        return scores.masked_fill(~torch.from_numpy(allowed).to(scores.device), float("-inf"))
