"""Noise on the input embeddings while training (NEFTune: Jain et al., 2023, "Noisy Embeddings
Improve Instruction Finetuning"): every element of the embedded training inputs gets uniform noise,
so the adapter cannot lean on the exact vectors of a few hundred phrasings. Validation passes,
generation and everything after training see the model untouched.

The magnitude here is per element and does not depend on the batch's layout: `train.embed_noise`
is the bound m of U(-m, m), in units of the embedding table (multiplied by the model's own embedding
scale where it has one: Gemma multiplies its embeddings by sqrt(hidden size) inside the module, so
the noise grows with them). NEFTune's alpha for rows of L tokens and hidden size d is the bound
alpha / sqrt(L * d); a packed row and a padded batch of the same examples differ in L, so calltune
takes the bound itself: alpha 5 at the starter's ~1,000-token prompts (d = 640) is m ≈ 0.006.

The draws come from torch's default generator, which the trainer seeds per (step, micro-batch)
(trainer.micro_seed), so a run is reproducible and resumes exactly. In a row packed around a
shared head (loss.pack_shared_prefix) the head is embedded once, so its examples share one draw."""

from __future__ import annotations

import contextlib

from calltune.train.loss import lm_parts


@contextlib.contextmanager
def embedding_noise(model, bound: float):
    """Within the block, the model's input embeddings get U(-bound, bound) noise (times the
    embedding module's `embed_scale`, if it has one) whenever it is in training mode."""
    if bound <= 0:
        yield
        return
    embed = lm_parts(model).body.get_input_embeddings()
    scale = float(getattr(embed, "embed_scale", 1.0))

    def add_noise(module, inputs, output):
        if not module.training:
            return output
        return output + output.new_empty(output.shape).uniform_(-bound * scale, bound * scale)

    handle = embed.register_forward_hook(add_noise)
    try:
        yield
    finally:
        handle.remove()
