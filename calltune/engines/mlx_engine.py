"""A Hugging Face model directory run by mlx-lm (Apple silicon; mlx[cpu] on Linux), greedily.

Same text conventions as TorchEngine: special tokens kept, an end token that ends generation
dropped, the text cut before the first stop string. On Linux the mlx[cpu] wheel's BLAS is slow;
preload OpenBLAS (see calltune/train/mlx_backend.py) for usable speed.
"""

from __future__ import annotations

from pathlib import Path

from calltune.engines.base import Generation, finish, split_stops


class MlxEngine:
    def __init__(self, model_dir, *, name: str = "mlx"):
        from mlx_lm import load
        from transformers import GenerationConfig

        self.name = name
        self.model, self.tokenizer = load(str(Path(model_dir)))
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set([] if eos is None else [eos] if isinstance(eos, int) else eos)

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str], constraint=None) -> Generation:
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        stop_ids, stop_texts = split_stops(self.tokenizer, stop)
        end_ids = self.eos_ids | set(stop_ids)
        prompt_ids = mx.array(self.tokenizer.encode(prompt, add_special_tokens=False))
        processors = None if constraint is None else [mask_processor(constraint.token_mask(self._hf_tokenizer(),
                                                                                          max_new_tokens))]
        new_ids: list[int] = []
        # no sampler: generate_step takes the argmax
        for token, _ in generate_step(prompt_ids, self.model, max_tokens=max_new_tokens,
                                      logits_processors=processors):
            new_ids.append(int(token))
            if new_ids[-1] in end_ids or any(s in self._decode(new_ids) for s in stop_texts):
                break
        return finish(new_ids, end_ids, self._decode, stop)

    def _hf_tokenizer(self):
        """The Hugging Face tokenizer inside mlx-lm's wrapper (llguidance reads it)."""
        return getattr(self.tokenizer, "_tokenizer", self.tokenizer)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def mask_processor(mask):
    """An mlx-lm logits processor (tokens, logits) -> logits applying a TokenMask. mlx-lm calls it
    once a step, the first time after the prompt; from the second call on, the newest token is the
    one just generated and is consumed first."""
    import mlx.core as mx
    import numpy as np

    calls = [0]

    def process(tokens, logits):
        calls[0] += 1
        if calls[0] > 1:
            mask.consume(int(tokens[-1].item()))
        allowed = mask.allowed(logits.shape[-1])
        return mx.where(mx.array(allowed[None] if logits.ndim == 2 else allowed), logits,
                        mx.array(-np.inf, dtype=logits.dtype))

    return process
