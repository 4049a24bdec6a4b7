"""Text that never contains given words, as a finite automaton over characters (Aho-Corasick).

For grammar languages without negation (GBNF): state i is "the text so far ends with prefix i of
some word"; each state lists where each character of the words leads (none where it would complete
a word); every other character leads back to the start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AvoidState:
    moves: tuple[tuple[str, int], ...]  # (word character, next state); a character that would complete a
    #                                      word has no move
    word_chars: str  # every character that occurs in a word (any other character leads to state 0)


def avoid_automaton(words) -> list[AvoidState]:
    """States of the automaton accepting exactly the texts that contain none of `words`.

    State 0 is the start; every state accepts (a text may end anywhere)."""
    words = sorted({w for w in words if w})
    prefixes = sorted({w[:i] for w in words for i in range(len(w))}, key=lambda p: (len(p), p))
    index = {p: i for i, p in enumerate(prefixes)}
    chars = "".join(sorted({c for w in words for c in w}))

    def state_after(text: str) -> int | None:
        """The longest suffix of `text` that is a word prefix (None: `text` ends with a word)."""
        if any(text.endswith(w) for w in words):
            return None
        for start in range(len(text) + 1):
            if text[start:] in index:
                return index[text[start:]]
        return 0

    states = []
    for prefix in prefixes:
        moves = []
        for c in chars:
            target = state_after(prefix + c)
            if target is not None:
                moves.append((c, target))
        states.append(AvoidState(tuple(moves), chars))
    return states
