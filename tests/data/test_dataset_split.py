from collections import Counter

import pytest

from calltune.data.split import SPLITS, split_dataset
from calltune.errors import InputError

RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}
CITIES = ["Oslo", "Lima", "Pune", "Graz", "Hue", "Bern", "Cork", "Nice", "Kobe", "Baku", "Riga", "Suva",
          "Doha", "Male", "Apia", "Lome", "Kiev", "Minsk", "Quito", "Accra"]


def record(i, query, calls=()):
    return {"id": f"ex-{i:05d}", "messages": [{"role": "user", "content": query},
                                              {"role": "assistant", "content": "x"}],
            "tools": [], "meta": {"source": f"e.jsonl:{i}", "calls": list(calls)}}


def dataset():
    """200 distinct single-city weather queries, 40 no-call, 20 parallel; all far apart."""
    rows = []
    phrasings = ["weather {} number {}", "forecast please {} item {}", "is it raining {} case {}",
                 "temperature {} ticket {}", "umbrella needed {} query {}"]
    for i in range(200):
        rows.append(record(len(rows), phrasings[i % 5].format(CITIES[i % 20], i), ["get_weather"]))
    for i in range(40):
        rows.append(record(len(rows), f"sing song {i} now", []))
    for i in range(20):
        rows.append(record(len(rows), f"compare {CITIES[i]} with {CITIES[-i - 1]} option {i}",
                           ["get_weather", "get_weather"]))
    return rows


def ids(result):
    return {name: [r["id"] for r in rows] for name, rows in result.splits.items()}


def test_same_seed_same_splits_other_seed_other_splits():
    first = split_dataset(dataset(), RATIOS, 0.8, seed=1)
    assert ids(first) == ids(split_dataset(dataset(), RATIOS, 0.8, seed=1))
    assert ids(first)["test"] != ids(split_dataset(dataset(), RATIOS, 0.8, seed=2))["test"]


def test_splits_partition_the_data_with_ratio_counts_and_zero_overlap():
    result = split_dataset(dataset(), RATIOS, 0.8, seed=3)
    all_ids = [i for name in SPLITS for i in ids(result)[name]]
    assert sorted(all_ids) == sorted(r["id"] for r in dataset())
    assert [result.report[f"n_{n}"] for n in SPLITS] == [208, 26, 26]
    assert result.report["overlap"] == 0 and result.report["near_duplicate_cross_split"] == 0


def test_each_stratum_is_split_in_proportion_parallel_calls_included():
    result = split_dataset(dataset(), RATIOS, 0.8, seed=4)
    for name, expected in [("train", (160, 32, 16)), ("valid", (20, 4, 2)), ("test", (20, 4, 2))]:
        strata = Counter(tuple(r["meta"]["calls"]) for r in result.splits[name])
        got = (strata[("get_weather",)], strata[()], strata[("get_weather", "get_weather")])
        assert all(abs(g - e) <= 1 for g, e in zip(got, expected)), (name, got, expected)


def test_exact_duplicates_are_dropped_after_normalisation_and_counted():
    rows = dataset() + [record(900, "WEATHER  Oslo number 0!", ["get_weather"]), record(901, "sing song 3 now?")]
    result = split_dataset(rows, RATIOS, 0.8, seed=5)
    kept = {r["id"] for name in SPLITS for r in result.splits[name]}
    assert result.report["exact_duplicates"] == 2 and "ex-00900" not in kept and "ex-00000" in kept


def test_near_duplicates_stay_on_one_side():
    group = [record(500 + i, f"what is the weather like in porto today please {w}", ["get_weather"])
             for i, w in enumerate(["now", "friend", "mate", "thanks", "quickly", "again", "soon", "kindly"])]
    for seed in range(6):
        result = split_dataset(dataset() + group, RATIOS, 0.8, seed=seed)
        sides = {name for name in SPLITS for r in result.splits[name] if r["id"] in {g["id"] for g in group}}
        assert len(sides) == 1
        assert result.report["near_duplicate_groups"] == 1 and result.report["near_duplicate_examples"] == 8


def test_tiny_strata_still_reach_valid_and_test():
    rows = [record(i, f"unique request number {i} about {CITIES[i % 20]}", [f"tool_{i}"]) for i in range(40)]
    result = split_dataset(rows, RATIOS, 0.8, seed=6)
    assert result.report["strata"] == 40
    assert [result.report[f"n_{n}"] for n in SPLITS] == [32, 4, 4]


def test_a_zero_ratio_split_stays_empty():
    result = split_dataset(dataset(), {"train": 0.9, "valid": 0.0, "test": 0.1}, 0.8, seed=7)
    assert result.report["n_valid"] == 0 and result.report["n_test"] == 26


def test_too_few_examples_for_the_ratios_is_an_input_error():
    with pytest.raises(InputError, match="too few: the valid split would be empty") as excinfo:
        split_dataset([record(i, f"q {i} {CITIES[i]}") for i in range(3)], RATIOS, 0.8, seed=0)
    assert excinfo.value.field == "split.valid"


def test_rows_made_from_one_example_stay_in_its_split():
    rows = dataset()
    for i in range(0, 200, 10):  # two distinct-looking rows augmented from every 10th example
        for k in range(2):
            sibling = record(1000 + 2 * i + k, f"totally different wording {i} {k} {CITIES[(i + k) % 20]}", ["get_weather"])
            sibling["meta"]["origin"] = rows[i]["id"]
            rows.append(sibling)
    landed = Counter()
    for seed in range(10):
        result = split_dataset(rows, RATIOS, 0.8, seed=seed)
        side = {r["id"]: name for name in SPLITS for r in result.splits[name]}
        assert all(side[r["id"]] == side[r["meta"]["origin"]] for r in rows if "origin" in r["meta"])
        assert result.report["augmented_families"] == 20 and result.report["family_cross_split"] == 0
        landed.update(side[rows[i]["id"]] for i in range(0, 200, 10))
    # big groups are dealt like single rows: families reach valid and test about as often as others
    assert set(landed) == set(SPLITS) and 0.65 <= landed["train"] / 200 <= 0.9
