"""What an engine is handed to constrain one generation: the grammar, printed once per dialect.

`minimal` is the same grammar with required keys only: near the end of the token budget an engine
switches to it when what was generated so far fits it (calltune.constrain.wrapup).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from calltune.constrain.grammar import Grammar


@dataclass
class Constraint:
    grammar: Grammar
    minimal: Grammar | None = None
    _printed: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def for_request(cls, fmt, tools: list[dict] | None, tool_choice="auto") -> "Constraint":
        """The constraint of a reply in chat format `fmt` to `tools` under an OpenAI `tool_choice`."""
        from calltune.constrain.calls import call_grammar

        return cls(call_grammar(fmt, tools, tool_choice), call_grammar(fmt, tools, tool_choice, minimal=True))

    def gbnf(self, end_tokens=(), tokens=(), minimal: bool = False) -> str:
        """llama.cpp's GBNF of the grammar (root rule `root`); `end_tokens`: the texts of the
        model's end-of-generation tokens (llama.cpp allows those where the grammar is complete);
        `tokens`: the grammar's token texts that are one token of the vocabulary (matched as such)."""
        grammar = self.minimal if minimal and self.minimal is not None else self.grammar
        key = ("gbnf", minimal, tuple(sorted(end_tokens)), tuple(sorted(tokens)))
        if key not in self._printed:
            from calltune.constrain.gbnf import to_gbnf

            self._printed[key] = to_gbnf(grammar, end_tokens, tokens)
        return self._printed[key]

    def torch_processor(self, constraints: list, hf_tokenizer, prompt_length: int, max_new_tokens: int):
        """A transformers logits processor masking each batch row by its constraint (None: free);
        called on any constraint of the batch, so that engines need not import this package."""
        from calltune.constrain.mask import FreeMask
        from calltune.constrain.torch_processor import MaskLogitsProcessor

        masks = [c.token_mask(hf_tokenizer, max_new_tokens) if c is not None else FreeMask() for c in constraints]
        return MaskLogitsProcessor(masks, prompt_length)

    def wrapping_up(self, generated: int, max_new_tokens: int | None) -> bool:
        """Whether a generation is in its budget's wrap-up steps (calltune.constrain.wrapup)."""
        from calltune.constrain.wrapup import wrapping_up

        return wrapping_up(generated, max_new_tokens)

    def closers(self, single_token):
        """calltune.constrain.wrapup.Closers of the grammar; `single_token(text)` -> id or None."""
        from calltune.constrain.wrapup import Closers

        return Closers.of(self.grammar, single_token)

    def vocabulary_tokens(self, tokenize, is_end) -> tuple[list[str], list[str]]:
        """(end tokens, single tokens) among the grammar's token texts and `stop` strings, for
        gbnf(): `tokenize(text)` -> ids, `is_end(id)` -> whether it ends generation."""
        texts = self.grammar.token_texts()
        single = {t: ids[0] for t in texts if len(ids := tokenize(t)) == 1}
        return sorted(t for t, i in single.items() if is_end(i)), sorted(single)

    def lark(self, hf_tokenizer, minimal: bool = False) -> str:
        """llguidance's Lark of the grammar, special tokens as this tokenizer has them."""
        from calltune.constrain.mask import lark_for

        grammar = self.minimal if minimal and self.minimal is not None else self.grammar
        key = ("lark", minimal, id(hf_tokenizer))
        if key not in self._printed:
            self._printed[key] = lark_for(grammar, hf_tokenizer)
        return self._printed[key]

    def token_mask(self, hf_tokenizer, max_new_tokens: int | None = None):
        """A fresh calltune.constrain.mask.TokenMask for one generation with this tokenizer
        (`max_new_tokens`: its budget, whose last steps close what is open)."""
        from calltune.constrain.mask import TokenMask

        minimal = None if self.minimal is None or max_new_tokens is None else self.lark(hf_tokenizer, minimal=True)
        return TokenMask(self.grammar, hf_tokenizer, lark=self.lark(hf_tokenizer), max_new_tokens=max_new_tokens,
                         minimal_lark=minimal)
