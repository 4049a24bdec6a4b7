"""Near-duplicate groups: queries whose word sets overlap at or above a Jaccard threshold,
closed transitively (union-find), so a split can keep each group on one side.

Candidate pairs come from a prefix filter (Bayardo et al., "Scaling up all pairs similarity
search"): with words in a global rarest-first order, two sets with Jaccard >= t must share a
word among the first |x| - ceil(t*|x|) + 1 of each. Exact, and far below n^2 on real data.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from calltune.data.text import jaccard

_EPS = 1e-9


def similar_pairs(sets: list[frozenset], threshold: float) -> list[tuple[int, int]]:
    """All (i, j), i < j, with jaccard(sets[i], sets[j]) >= threshold (0 < threshold <= 1).

    Empty sets pair with nothing (their queries have no words; equal ones are exact duplicates)."""
    frequency = Counter(s for x in sets for s in x)
    index: dict[str, list[int]] = defaultdict(list)
    pairs = []
    for j, x in enumerate(sets):
        if not x:
            continue
        ordered = sorted(x, key=lambda s: (frequency[s], s))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered) - _EPS) + 1]
        candidates = {i for s in prefix for i in index[s]}
        pairs += [(i, j) for i in sorted(candidates) if jaccard(sets[i], x) >= threshold - _EPS]
        for s in prefix:
            index[s].append(j)
    return pairs


def groups(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of `pairs` over 0..n-1, each sorted, ordered by first member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(j)] = root(i)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[root(i)].append(i)
    return sorted(members.values(), key=lambda g: g[0])
