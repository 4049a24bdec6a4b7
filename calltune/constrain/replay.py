"""Would the constraint have changed a greedy generation? If every token the model chose is one the
grammar allows, constrained greedy decoding picks the very same tokens, so an unconstrained output
inside the grammar is also the constrained output and need not be generated again.

The output is checked as text: it is tokenized again (special tokens parsed), which is the token
sequence the engines produce for calltune's outputs; the grammar's language is a language of text
and control tokens, so another split of the same text is judged the same way.
"""

from __future__ import annotations


def within_grammar(constraint, hf_tokenizer, text: str, stop_strings, truncated: bool) -> bool:
    """Whether `text` (a generation cut before its stop string) stays inside the constraint's
    grammar and, unless `truncated` (it ran out of tokens), may end where it ended: with one of
    the stop strings, or with the end of the grammar."""
    mask = constraint.token_mask(hf_tokenizer)
    for token in hf_tokenizer(text, add_special_tokens=False)["input_ids"]:
        if not mask.consume(token):
            return False
    if truncated or mask.matcher.is_accepting():
        return True
    added = hf_tokenizer.get_added_vocab()
    stops = [added[s] for s in stop_strings if s in added]
    allowed = mask.allowed(mask.tokenizer.vocab_size)
    return any(allowed[t] for t in stops if t < len(allowed))
