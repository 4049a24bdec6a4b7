"""Query normalisation and word sets: the notion of "same question" used by generate and split."""

from __future__ import annotations

import unicodedata


def normalise_text(text: str) -> str:
    """Casefold, turn punctuation into spaces and collapse whitespace."""
    chars = (" " if unicodedata.category(c).startswith("P") else c for c in text.casefold())
    return " ".join("".join(chars).split())


def query_key(messages: list[dict]) -> str:
    """Everything the user said in a conversation, normalised: two examples with the same key ask
    the same thing (a follow-up such as "and in Fahrenheit?" differs by its history)."""
    said = [m["content"] for m in messages if m["role"] == "user"]
    return normalise_text("\n".join(said))


def words(key: str) -> frozenset[str]:
    """The set of words of a normalised key. Word sets rather than bigrams: on queries of a dozen
    words, "weather in Porto in Celsius" vs "... in Fahrenheit" should count as near-duplicates."""
    return frozenset(key.split())


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0
