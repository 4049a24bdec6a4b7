"""Token masks from a Grammar with llguidance: which next tokens keep a reply inside the grammar.

    mask = TokenMask(grammar, hf_tokenizer)         # one per generation
    logits = mask.apply(logits)                     # numpy [vocab] logits, disallowed -> -inf
    mask.consume(token)                             # after choosing it

Used by the PyTorch (calltune.constrain.torch_processor), onnxruntime and MLX engines. llguidance
(MIT, Rust, one abi3 wheel per platform, no dependencies) computes a mask over Gemma's 262,144
tokens in 0.25 ms per token on average (p95 2 ms; ~8 ms at a reply's first token) on 2 shared
CPU cores (bench/constrained_decoding.py). Wrapping a tokenizer costs ~8-16 s for that vocabulary,
so it is done once per tokenizer object.
"""

from __future__ import annotations

import weakref

import numpy as np

from calltune.constrain.grammar import Grammar
from calltune.constrain.lark import to_lark

_WRAPPED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def llg_tokenizer(hf_tokenizer):
    """The llguidance tokenizer of a Hugging Face fast tokenizer (built once per tokenizer object)."""
    if hf_tokenizer not in _WRAPPED:
        import llguidance.hf

        _WRAPPED[hf_tokenizer] = llguidance.hf.from_tokenizer(hf_tokenizer)
    return _WRAPPED[hf_tokenizer]


def special_token_texts(grammar: Grammar, hf_tokenizer) -> set[str]:
    """The grammar's Token texts that are single special tokens of this tokenizer (matched by id)."""
    added = hf_tokenizer.get_added_vocab()
    wrapped = llg_tokenizer(hf_tokenizer)
    return {t for t in grammar.token_texts() if t in added and wrapped.is_special_token(added[t])}


def lark_for(grammar: Grammar, hf_tokenizer) -> str:
    return to_lark(grammar, special_token_texts(grammar, hf_tokenizer))


class TokenMask:
    """The grammar's state during one generation, as a mask over the vocabulary."""

    def __init__(self, grammar: Grammar, hf_tokenizer, *, lark: str | None = None, max_new_tokens: int | None = None,
                 minimal_lark: str | None = None):
        from calltune.constrain.wrapup import Closers, hf_single_token

        self.tokenizer = llg_tokenizer(hf_tokenizer)
        self.matcher = self._matcher(lark or lark_for(grammar, hf_tokenizer))
        self._bits = np.zeros((1, (self.tokenizer.vocab_size + 31) // 32), dtype=np.int32)
        self.failed = False  # a token outside the grammar was consumed (e.g. a batch row's padding)
        self.max_new_tokens, self.consumed = max_new_tokens, []
        self.closers = Closers.of(grammar, hf_single_token(hf_tokenizer))
        self._minimal_lark = minimal_lark  # switched to once, at the wrap-up (calltune.constrain.wrapup)

    def _matcher(self, lark: str):
        import llguidance

        matcher = llguidance.LLMatcher(self.tokenizer, llguidance.LLMatcher.grammar_from_lark(lark), log_level=0)
        if matcher.is_error():
            raise ValueError(f"llguidance rejects the grammar: {matcher.get_error()}")
        return matcher

    @property
    def generated(self) -> int:
        return len(self.consumed)

    def allowed(self, n_vocab: int) -> np.ndarray:
        """Booleans [n_vocab]: True where the token may come next (all True once the grammar has
        failed or finished, so that a stop or padding token is never blocked). In the last steps
        of the budget (calltune.constrain.wrapup) only the first allowed closer, if any."""
        from calltune.constrain.wrapup import wrapping_up

        if self.failed or self.matcher.is_stopped():
            return np.ones(n_vocab, dtype=bool)
        wrap_up = wrapping_up(self.generated, self.max_new_tokens)
        if wrap_up and self._minimal_lark is not None:
            self._switch_to_minimal()
        import llguidance.numpy

        llguidance.numpy.fill_next_token_bitmask(self.matcher, self._bits)
        bits = np.unpackbits(self._bits[0].view(np.uint8), bitorder="little").astype(bool)
        bits = bits[:n_vocab] if len(bits) >= n_vocab else np.concatenate([bits, np.zeros(n_vocab - len(bits), bool)])
        if wrap_up:
            closer = self.closers.choose(lambda ids: np.array([i < n_vocab and bool(bits[i]) for i in ids]))
            if closer is not None:
                bits = np.zeros(n_vocab, dtype=bool)
                bits[closer] = True
        return bits

    def _switch_to_minimal(self) -> None:
        """Continue in the required-keys-only grammar if what was generated so far fits it."""
        minimal, self._minimal_lark = self._matcher(self._minimal_lark), None
        if minimal.consume_tokens(self.consumed) and not minimal.is_error():
            self.matcher = minimal

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """`logits` [vocab] with every disallowed token at -inf (a copy)."""
        return np.where(self.allowed(logits.shape[-1]), logits, -np.inf).astype(logits.dtype, copy=False)

    def consume(self, token: int) -> bool:
        """Advance past `token`; False (and failed from then on) where the grammar does not allow it."""
        self.consumed.append(int(token))
        if self.failed or self.matcher.is_stopped():
            return True
        if not self.matcher.consume_token(int(token)):
            self.failed = True
        return not self.failed


class FreeMask:
    """No constraint (a batch row without one): every token allowed."""

    failed = False

    def allowed(self, n_vocab: int) -> np.ndarray:
        return np.ones(n_vocab, dtype=bool)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return logits

    def consume(self, token: int) -> bool:
        return True
