"""Leak-free train/valid/test splits.

1. Exact duplicates (same normalised user text, see text.query_key) keep their first example.
2. Near-duplicates (word-set Jaccard >= near_duplicate) and rows made from one example (an
   augmented row's meta.origin names its source's id) form groups that go to one split whole, so
   no test query has a sibling in training.
3. Groups are stratified by the tools their first example calls, counted with repeats: no call,
   one get_weather call and two parallel get_weather calls are three strata, so parallel calls
   reach valid and test in proportion too. Strata in seeded random order, groups shuffled within each, are dealt one after
   another to the split furthest below its share of everything dealt so far. Every stratum thus
   gets its share to within one group, and strata too small to reach valid or test on their own
   (fewer than about 1/ratio groups) still feed them through the running deficit, in turns
   decided by the seed, instead of all landing in train.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from calltune.data.neardup import groups, similar_pairs
from calltune.data.text import query_key, words
from calltune.errors import InputError

SPLITS = ("train", "valid", "test")


@dataclass
class SplitResult:
    splits: dict[str, list[dict]]  # records of each split, in dataset order
    report: dict  # numeric metrics


def split_dataset(records: list[dict], ratios: dict, near_duplicate: float, seed: int) -> SplitResult:
    kept, keys, seen = [], [], set()
    for record in records:
        key = query_key(record["messages"])
        if key not in seen:
            seen.add(key)
            kept.append(record)
            keys.append(key)
    pairs = similar_pairs([words(k) for k in keys], near_duplicate)
    siblings = family_pairs(kept)
    clusters = groups(len(kept), pairs + siblings)
    side = _deal(clusters, [stratum(r) for r in kept], [ratios[s] for s in SPLITS], seed)
    splits = {name: [kept[i] for i in range(len(kept)) if side[i] == k] for k, name in enumerate(SPLITS)}
    for name in SPLITS:
        if ratios[name] > 0 and not splits[name]:
            raise InputError(f"{len(kept)} distinct examples are too few: the {name} split would be empty",
                             field=f"split.{name}")
    report = {
        "n_input": len(records),
        "exact_duplicates": len(records) - len(kept),
        "near_duplicate_groups": sum(len(c) > 1 for c in clusters),
        "near_duplicate_examples": sum(len(c) for c in clusters if len(c) > 1),
        "strata": len({stratum(r) for r in kept}),
        **{f"n_{name}": len(splits[name]) for name in SPLITS},
        "overlap": overlap(splits),
        "near_duplicate_cross_split": sum(side[i] != side[j] for i, j in pairs),
        "augmented_families": len({family(r) for r in kept if "origin" in r["meta"]}),
        "largest_group": max((len(c) for c in clusters), default=0),
        "family_cross_split": sum(side[i] != side[j] for i, j in siblings),
    }
    if report["overlap"] or report["near_duplicate_cross_split"] or report["family_cross_split"]:
        raise RuntimeError(f"split leaked examples between splits: {report}")
    return SplitResult(splits, report)


def family(record: dict) -> str:
    """The id of the example a record was made from (its own id when it was not made from one)."""
    return record["meta"].get("origin", record["id"])


def family_pairs(records: list[dict]) -> list[tuple[int, int]]:
    """(first member, other member) for every record made from the same example as an earlier one."""
    first: dict[str, int] = {}
    pairs = []
    for i, record in enumerate(records):
        key = family(record)
        if key in first:
            pairs.append((first[key], i))
        else:
            first[key] = i
    return pairs


def stratum(record: dict) -> tuple[str, ...]:
    return tuple(sorted(record["meta"]["calls"]))


def overlap(splits: dict[str, list[dict]]) -> int:
    """Normalised queries found in more than one split (counted once per pair of splits)."""
    keys = {name: {query_key(r["messages"]) for r in rows} for name, rows in splits.items()}
    return sum(len(keys[a] & keys[b]) for a, b in combinations(keys, 2))


def _deal(clusters: list[list[int]], strata: list[tuple], ratios: list[float], seed: int) -> list[int]:
    """The split index of every example (see the module docstring)."""
    rng = random.Random(f"calltune-split:{seed}")
    by_stratum = defaultdict(list)
    for cluster in clusters:
        by_stratum[strata[cluster[0]]].append(cluster)
    order = sorted(by_stratum)
    rng.shuffle(order)
    side, counts, dealt = [0] * len(strata), [0] * len(ratios), 0
    for key in order:
        members = by_stratum[key]
        rng.shuffle(members)
        for cluster in members:
            # deficits as if the group were one example: a big group (an example and its augmented
            # rows) must not lean towards the largest split just because it is big
            deficits = [ratio * (dealt + 1) - count for ratio, count in zip(ratios, counts)]
            dealt += len(cluster)
            k = max(range(len(ratios)), key=lambda s: (deficits[s], -s))
            counts[k] += len(cluster)
            for i in cluster:
                side[i] = k
    return side
