"""The avoid automaton (GBNF's text without given words) accepts exactly the texts without them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from calltune.constrain.avoid import avoid_automaton

WORDS = st.lists(st.text("<>abe", min_size=1, max_size=5), min_size=1, max_size=4)


def accepts(states, text: str) -> bool:
    state = 0
    for c in text:
        moves = dict(states[state].moves)
        if c in moves:
            state = moves[c]
        elif c in states[state].word_chars:
            return False  # this character would complete a word
        else:
            state = 0
    return True


@settings(max_examples=300, deadline=None)
@given(words=WORDS, text=st.text("<>abex", max_size=14))
def test_the_automaton_accepts_exactly_the_texts_without_the_words(words, text):
    assert accepts(avoid_automaton(words), text) == (not any(w in text for w in words))


def test_escape_automaton_has_a_state_per_prefix():
    states = avoid_automaton(["<escape>"])
    assert len(states) == len("<escape>")
    assert ">" not in dict(states[-1].moves)  # "<escape" + ">" would complete the word: no move
    assert dict(states[-1].moves)["<"] == 1  # a new "<" starts over
