"""A Hugging Face model directory run by mlx-lm (Apple silicon; mlx[cpu] on Linux), greedily.

Same text conventions as TorchEngine: special tokens kept, an end token that ends generation
dropped, the text cut before the first stop string. On Linux the mlx[cpu] wheel's BLAS is slow;
preload OpenBLAS (see calltune/train/mlx_backend.py) for usable speed.
"""

from __future__ import annotations

from pathlib import Path

from calltune.evaluate.engines import Generation, finish, split_stops


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

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str]) -> Generation:
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        stop_ids, stop_texts = split_stops(self.tokenizer, stop)
        end_ids = self.eos_ids | set(stop_ids)
        prompt_ids = mx.array(self.tokenizer.encode(prompt, add_special_tokens=False))
        new_ids: list[int] = []
        # no sampler: generate_step takes the argmax
        for token, _ in generate_step(prompt_ids, self.model, max_tokens=max_new_tokens):
            new_ids.append(int(token))
            if new_ids[-1] in end_ids or any(s in self._decode(new_ids) for s in stop_texts):
                break
        return finish(new_ids, end_ids, self._decode, stop)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
