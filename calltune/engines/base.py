"""What every inference engine shares: the protocol, the Generation it returns, and one way to end.

An engine turns a rendered prompt into generated text, greedily. The text is decoded with special
tokens kept (the chat formats parse them) and cut before the first stop string; an end-of-sequence
token that ends generation is dropped. `n_tokens` counts every token generated, stop token included.

`constraint` (a calltune.constrain.Constraint, optional) restricts generation to its grammar: valid
calls to the request's tools or free text (schema-constrained decoding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable


class Generation(NamedTuple):
    text: str
    n_tokens: int


@runtime_checkable
class Engine(Protocol):
    name: str  # e.g. "torch", "onnx-q4", "gguf-q4_K_M"

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str], constraint=None) -> Generation: ...


def cut_at_stop(text: str, stop: list[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


def finish(new_ids: list[int], end_ids, decode: Callable[[list[int]], str], stop: list[str]) -> Generation:
    """The Generation for the generated ids: every id counts, an end id that ended generation is
    dropped from the text, and the text (decoded with special tokens) is cut before the first stop."""
    n_tokens = len(new_ids)
    if new_ids and new_ids[-1] in end_ids:
        new_ids = new_ids[:-1]
    return Generation(cut_at_stop(decode(new_ids), stop), n_tokens)


def split_stops(tokenizer, stop: list[str]) -> tuple[list[int], list[str]]:
    """Split stop strings into special-token ids and plain strings (of a Hugging Face tokenizer).

    Only added (special) tokens are matched by id: a plain token such as "}" can also occur
    inside a longer token, which only a string match catches.
    """
    vocab = tokenizer.get_added_vocab()
    return [vocab[s] for s in stop if s in vocab], [s for s in stop if s not in vocab]
