import random
from itertools import combinations

import pytest

from calltune.data.neardup import groups, similar_pairs
from calltune.data.text import jaccard, normalise_text, query_key, words


def brute_force(sets, threshold):
    return [(i, j) for i, j in combinations(range(len(sets)), 2)
            if sets[i] and sets[j] and jaccard(sets[i], sets[j]) >= threshold - 1e-9]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 1.0])
def test_prefix_filter_finds_exactly_the_pairs_brute_force_finds(threshold):
    rng = random.Random(threshold)
    vocabulary = [f"w{i}" for i in range(14)]
    sets = [frozenset(rng.sample(vocabulary, rng.randint(1, 9))) for _ in range(160)]
    sets += [frozenset(), frozenset(), sets[3]]
    assert similar_pairs(sets, threshold) == sorted(brute_force(sets, threshold), key=lambda p: (p[1], p[0]))


def test_threshold_edge_where_float_rounding_would_shorten_the_prefix():
    # 0.7 * 10 == 7.000000000000001: the prefix must still admit pairs with Jaccard exactly 0.7.
    a = frozenset(f"w{i}" for i in range(10))
    b = frozenset([*(f"w{i}" for i in range(7)), "x", "y", "z"])
    c = frozenset(f"w{i}" for i in range(7))
    assert jaccard(a, c) == pytest.approx(0.7) and jaccard(b, c) == pytest.approx(0.7)
    assert similar_pairs([a, b, c], 0.7) == [(0, 2), (1, 2)]


def test_groups_are_transitive_closures():
    assert groups(6, [(0, 2), (2, 4), (1, 5)]) == [[0, 2, 4], [1, 5], [3]]


def test_normalisation_ignores_case_punctuation_and_spacing():
    assert normalise_text("  What's   the WEATHER in São Paulo?! ") == "what s the weather in são paulo"
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Weather, Oslo?"}]
    assert query_key(messages) == "hi weather oslo"
    assert words("a b a") == frozenset({"a", "b"})
