"""Finishing inside the token budget: near its end, a constrained generation closes what is open.

A grammar keeps every call valid but cannot make a model stop: a string may go on until the
budget runs out, and a truncated call does not parse. In the last wrap_up_tokens(budget) steps
(24, or a third of a smaller budget) an engine
switches to the grammar's required-keys-only form (when what was generated so far fits it) and
picks, among the tokens the grammar allows, the first allowed of the grammar's closers (the end
of the reply, `]`, `}`, ...; inside a string, what ends the string comes first), and otherwise
its own best token. Outputs that end earlier are untouched: greedy decoding is unchanged before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WRAP_UP_TOKENS = 24  # at most; a third of a budget under 72 tokens
TEXT_PROBES = ("Q", "~", "#")  # all allowed: the generation is inside a string or free text


def wrap_up_tokens(max_new_tokens: int) -> int:
    """How many of a budget's last steps close what is open."""
    return min(WRAP_UP_TOKENS, max_new_tokens // 3)


def wrapping_up(generated: int, max_new_tokens: int | None) -> bool:
    """Whether a generation that has made `generated` tokens is in its budget's wrap-up steps."""
    return max_new_tokens is not None and max_new_tokens - generated <= wrap_up_tokens(max_new_tokens)


@dataclass(frozen=True)
class Closers:
    """Token ids (single-token texts only) of a grammar's closers, for one vocabulary."""
    structure: np.ndarray  # grammar.closers, best first
    string: np.ndarray  # grammar.string_closers
    probes: np.ndarray  # TEXT_PROBES

    @classmethod
    def of(cls, grammar, single_token) -> "Closers":
        """`single_token(text)` -> the id of a text that is one token, else None."""
        def ids(texts):
            return np.array([i for i in map(single_token, texts) if i is not None], dtype=np.int64)
        return cls(ids(grammar.closers), ids(grammar.string_closers), ids(TEXT_PROBES))

    def choose(self, allowed) -> int | None:
        """The closer to take, given `allowed(ids)` -> booleans; None: no closer is allowed."""
        in_text = len(self.probes) > 0 and bool(allowed(self.probes).all())
        for ids in ((self.string, self.structure) if in_text else (self.structure,)):
            if len(ids):
                ok = allowed(ids)
                if ok.any():
                    return int(ids[np.argmax(ok)])
        return None


def hf_single_token(hf_tokenizer):
    """single_token for a Hugging Face tokenizer."""
    def single(text: str):
        ids = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None
    return single
