"""Run a GGUF with llama.cpp in-process (calltune.engines.libllama), greedily, keeping special tokens.

Decoding keeps special tokens in the text, like the other engines, so the chat formats can parse
FunctionGemma's <start_function_call>/<escape> markers. Prompts that share a beginning with the
previous one (the tool declarations, in evaluation) reuse llama.cpp's KV cache for it. It
satisfies the evaluate Engine protocol (name, generate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calltune.engines.base import Generation, finish


class LlamaCppEngine:
    def __init__(self, gguf_path, *, threads: int | None = 2, n_ctx: int = 2048, name: str | None = None):
        from calltune.engines.libllama import Context, Model

        self.name = name or f"gguf-{Path(gguf_path).stem.removeprefix('model-')}"
        self.model = Model(gguf_path)
        self.context = Context(self.model, n_ctx=n_ctx, threads=threads)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens written in it (such as <bos>) parsed as such."""
        return self.model.tokenize(text, special=True)

    def generate_ids(self, prompt_ids: list[int], max_new_tokens: int, stop: list[str] = (),
                     sampler=None) -> list[int]:
        """Greedy ids after `prompt_ids`, ending at end-of-generation, after max_new_tokens, once a
        stop string appears, or when the context is full. `sampler` (libllama.GrammarSampler)
        limits each step to the tokens its grammar allows."""
        context = self.context
        # The cached tokens the prompt starts with stay; at least one prompt token is evaluated anew.
        limit = min(len(context.tokens), len(prompt_ids) - 1)
        shared = next((i for i in range(limit) if context.tokens[i] != prompt_ids[i]), limit)
        context.keep(shared)
        logits = context.eval(prompt_ids[shared:])
        out: list[int] = []
        while True:
            # greedy: the first of equal maxima; under a grammar, closing what is open in the budget's last steps
            token = int(np.argmax(logits)) if sampler is None else \
                sampler.best(logits, wrap_up=sampler.wrapping_up(len(out), max_new_tokens))
            if token is None:  # the grammar allows nothing more (it cannot happen with calltune's grammars)
                return out
            if sampler is not None:
                sampler.accept(token)
            out.append(token)
            if (self.model.is_end(out[-1]) or len(out) >= max_new_tokens or len(context.tokens) >= context.n_ctx
                    or any(s in self.decode(out) for s in stop)):
                return out
            logits = context.eval(out[-1:])

    def grammar_sampler(self, constraint):
        """llama.cpp's grammar sampler for a calltune.constrain.Constraint (None: no constraint)."""
        return None if constraint is None else grammar_sampler(self.model, constraint)

    def decode(self, ids: list[int]) -> str:
        return self.model.detokenize(ids, special=True).decode("utf-8", errors="replace")

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str], constraint=None) -> Generation:
        ids = self.generate_ids(self.tokenize(prompt), max_new_tokens, stop, self.grammar_sampler(constraint))
        ended = {ids[-1]} if ids and self.model.is_end(ids[-1]) else set()
        return finish(ids, ended, self.decode, stop)


def grammar_sampler(model, constraint):
    """libllama.GrammarSampler of a calltune.constrain.Constraint on a libllama.Model; a model loaded
    vocab_only will do (serve's llama-server backend closes replies with one)."""
    from calltune.engines.libllama import GrammarSampler

    def tokenize(text: str) -> list[int]:
        return model.tokenize(text, special=True)

    ends, tokens = constraint.vocabulary_tokens(tokenize, model.is_end)
    closers = constraint.closers(lambda text: ids[0] if len(ids := tokenize(text)) == 1 else None)
    return GrammarSampler(model, constraint.gbnf(ends, tokens), closers=closers,
                          minimal_gbnf=constraint.gbnf(ends, tokens, minimal=True) if constraint.minimal else None,
                          wrapping_up=constraint.wrapping_up, grammar_tokens=[tokenize(t)[0] for t in tokens])
