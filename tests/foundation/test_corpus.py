"""The foundation corpus: no held-out BFCL leak (asserted over the real data), distractors, composed
parallel rows, determinism."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from calltune.data.examples import Example
from calltune.data.importers.bfcl import safe_name
from calltune.data.text import normalise_text
from calltune.errors import InputError
from calltune.foundation import bfcl_data
from calltune.foundation.corpus import (build_corpus, compose_parallel, portable_source, swap_near, swap_no_call,
                                       tool_name, vary_pairs, vary_parallel, with_distractors)
from calltune.params import load_params

ROOT = Path(__file__).resolve().parents[2]
CFG = load_params(ROOT / "foundation" / "params.yaml")["corpus"]


def tool(name: str, description: str = "A tool.") -> dict:
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": {"type": "object", "properties": {}}}}


def example(query: str, calls: list[str], tools: list[str]) -> Example:
    return Example(query=query, calls=[{"name": c, "arguments": {}} for c in calls], tools=[tool(t) for t in tools],
                   path="x.jsonl", line=1)


@pytest.fixture(scope="module")
def real_corpus():
    return build_corpus({**CFG, "compose_parallel": 300, "vary_pairs": 300}, seed=1234)


def test_no_held_out_function_or_question_reaches_training(real_corpus):
    held_names, held_questions = set(), set()
    for category in bfcl_data.HELD_OUT_CATEGORIES:
        examples, _ = bfcl_data.import_category(category)
        held_questions |= {normalise_text(ex.query) for ex in examples}
        held_names |= {tool_name(t) for ex in examples for t in ex.tools}
    assert len(held_names) > 900 and len(held_questions) > 1000  # the guard really read the held-out data
    guard = bfcl_data.held_out()
    assert held_names <= guard.names and held_questions <= guard.questions
    rows = real_corpus.train + real_corpus.valid
    declared = {t["function"]["name"] for r in rows for t in r["tools"]}
    asked = {normalise_text(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"}
    assert not declared & (held_names | {safe_name(n) for n in held_names})
    assert not asked & held_questions
    assert real_corpus.report["leaks_dropped"]["function"] > 100  # live and non-live do share names


def test_corpus_mixes_sources_and_call_shapes(real_corpus):
    report = real_corpus.report
    assert report["kinds"]["bfcl"] > 1500 and report["kinds"]["toolbank"] > 1000 and report["kinds"]["composed"] > 250
    assert report["kinds"]["varied"] > 0.9 * CFG["vary_parallel"]  # values to vary are found in the real rows
    assert report["kinds"]["paired"] > 0.9 * 300 and report["paired_parallel"] == 300  # ... and pairs of them
    assert report["train_calls"]["no_call"] > 500 and report["train_calls"]["parallel"] > 250
    assert report["n_valid"] > 0 and report["split"]["overlap"] == 0
    assert set(report["bfcl"]) == set(CFG["bfcl_categories"])


def test_held_out_category_is_refused():
    with pytest.raises(InputError) as excinfo:
        build_corpus({**CFG, "bfcl_categories": ["live_simple", "parallel"], "toolbank": False}, seed=1)
    assert excinfo.value.field == "corpus.bfcl_categories" and "'parallel'" in excinfo.value.reason


def test_same_seed_same_corpus_other_seed_other_distractors():
    cfg = {**CFG, "bfcl_categories": ["live_simple"], "toolbank": False, "compose_parallel": 20}
    a, b, c = build_corpus(cfg, 7), build_corpus(cfg, 7), build_corpus(cfg, 8)
    assert a.train == b.train and a.valid == b.valid
    assert a.train != c.train


def test_sources_name_files_relative_to_the_repo_and_bfcl_eval(real_corpus):
    # absolute paths made every record of two checkouts' corpora differ (foundation/README.md)
    records = real_corpus.train + real_corpus.valid
    parts = [part for r in records for part in r["meta"]["source"].split("+")]
    assert not [p for p in parts if p.startswith("/") or str(ROOT) in p]
    assert {"/".join(p.split("/")[:2]) for p in parts} == {"bfcl_eval/data", "foundation/toolbank"}
    files = {p.split(":")[0] for p in parts}  # each names a real file under its root
    site = bfcl_data.data_dir().parents[1]
    assert all((site / f if f.startswith("bfcl_eval/") else ROOT / f).is_file() for f in files)


def test_portable_source_strips_each_root_in_a_joined_source():
    roots = ("/x/site-packages/", "/home/me/calltune/")
    source = "/x/site-packages/bfcl_eval/data/a.json:3+/home/me/calltune/foundation/toolbank/m/e.jsonl:9~swapped"
    assert portable_source(source, roots) == "bfcl_eval/data/a.json:3+foundation/toolbank/m/e.jsonl:9~swapped"
    assert portable_source("/elsewhere/f.json:1", roots) == "/elsewhere/f.json:1"


POOL = [tool(n) for n in ("get_weather_forecast", "play_song", "send_sms", "book_taxi", "set_alarm", "convert_units",
                          "find_recipe", "turn_on_lights", "track_package", "read_news", "log_workout", "pay_bill")]


def test_distractors_keep_own_tools_add_unrelated_ones_and_shuffle():
    ex = example("Weather in Oslo", ["get_weather"], ["get_weather", "get_time"])
    cfg = {"distractors_max": 8, "max_tools": 16}
    counts = set()
    for seed in range(30):
        got = with_distractors(ex, POOL, cfg, random.Random(seed))
        names = [tool_name(t) for t in got.tools]
        assert {"get_weather", "get_time"} <= set(names) and len(names) == len(set(names))
        assert "get_weather_forecast" not in names  # shares "weather" with an own tool: might do the same job
        assert got.calls == ex.calls
        counts.add(len(names) - 2)
    assert min(counts) == 0 and max(counts) >= 6


def test_no_call_rows_get_distractors_that_cannot_serve_them_and_max_tools_caps():
    no_call = example("Where can I track my package from the post office?", [], ["get_weather"])
    sizes = set()
    for seed in range(30):
        got = with_distractors(no_call, POOL, {"distractors_max": 8, "max_tools": 16}, random.Random(seed))
        names = {tool_name(t) for t in got.tools}
        assert "get_weather" in names and "track_package" not in names  # "package" is in the request
        sizes.add(len(names))
    assert max(sizes) >= 6  # the tool count must not tell a no-call row apart
    busy = example("Play jazz", ["play_music"], ["play_music", "pause", "skip"])
    for seed in range(20):
        assert len(with_distractors(busy, POOL, {"distractors_max": 8, "max_tools": 4}, random.Random(seed)).tools) <= 4


def test_composed_rows_join_two_requests_with_both_calls():
    singles = [example(f"Weather in city {i}", ["get_weather"], ["get_weather"]) for i in range(5)]
    singles += [example(f"Play song {i}", ["play_song"], ["play_song", "pause"]) for i in range(5)]
    singles += [example("Hi", [], ["get_weather"])]  # no call: never joined
    composed = compose_parallel(singles, 10, random.Random(0))
    assert len(composed) == 10
    for row in composed:
        assert len(row.calls) == 2
        names = {tool_name(t) for t in row.tools}
        assert {c["name"] for c in row.calls} <= names
        assert row.query.count("city") + row.query.count("song") == 2
    assert any(row.calls[0]["name"] == row.calls[1]["name"] for row in composed)
    assert any(row.calls[0]["name"] != row.calls[1]["name"] for row in composed)


def test_composed_rows_of_up_to_max_parts_requests_carry_every_call():
    """BFCL's held-out parallel items ask for 2-8 calls (45% three or more): compose_max_parts
    joins up to that many requests, each part's question and call kept, in order."""
    singles = [example(f"Weather in city {i}", ["get_weather"], ["get_weather"]) for i in range(6)]
    singles += [example(f"Play song {i}", ["play_song"], ["play_song", "pause"]) for i in range(6)]
    composed = compose_parallel(singles, 40, random.Random(0), max_parts=4)
    assert len(composed) == 40
    assert {len(row.calls) for row in composed} == {2, 3, 4}
    for row in composed:
        assert row.query.count("city") + row.query.count("song") == len(row.calls)
        assert {c["name"] for c in row.calls} <= {tool_name(t) for t in row.tools}
    same = [row for row in composed if len({c["name"] for c in row.calls}) == 1]
    assert any(len(row.calls) == 4 for row in same)  # one tool asked for four times (BFCL "parallel")
    assert compose_parallel(singles, 10, random.Random(0)) == compose_parallel(singles, 10, random.Random(0),
                                                                               max_parts=2)


def test_own_tools_subset_keeps_called_ones_and_only_needed_offers_nothing_else():
    ex = example("Play jazz", ["play_music"], ["play_music", "pause", "skip", "shuffle", "volume"])
    cfg = {"distractors_max": 0, "max_tools": 16, "own_tools": "subset", "only_needed": 0.0}
    kept = set()
    for seed in range(40):
        names = [tool_name(t) for t in with_distractors(ex, POOL, cfg, random.Random(seed)).tools]
        assert "play_music" in names
        kept.add(len(names) - 1)
    assert kept == {0, 1, 2, 3, 4}  # uniform in 0..all of the uncalled ones
    only = {**cfg, "distractors_max": 8, "only_needed": 1.0}
    for seed in range(10):
        assert [tool_name(t) for t in with_distractors(ex, POOL, only, random.Random(seed)).tools] == ["play_music"]
        no_call = with_distractors(example("Hi there", [], ["pause", "skip"]), POOL, only, random.Random(seed))
        assert len(no_call.tools) == 1 and tool_name(no_call.tools[0]) in {"pause", "skip"}


def test_tool_count_says_nothing_about_calling(real_corpus):
    """The shortcut the first GPU run learnt: few tools meant "decline". In the real corpus the
    no-call share among prompts with one or two tools stays close to the overall no-call share.
    Compared among rows with at most one call: a parallel row declares every tool it calls, so
    counting parallel rows would tie many tools to calling by construction, not by a shortcut."""
    rows = [r for r in real_corpus.train if len(r["meta"]["calls"]) <= 1]
    overall = sum(not r["meta"]["calls"] for r in rows) / len(rows)
    few = [r for r in rows if len(r["tools"]) <= 2]
    assert len(few) > 0.2 * len(rows)  # held-out prompts often declare one function: so must training
    share = sum(not r["meta"]["calls"] for r in few) / len(few)
    assert abs(share - overall) < 0.05, (share, overall)


def test_swapped_no_call_rows_offer_only_tools_that_cannot_serve_the_request():
    weather = Example(query="Will it rain in Oslo tomorrow?", calls=[{"name": "get_rain", "arguments": {}}],
                      tools=[tool("get_rain", "Rain forecast for a city.")], path="x.jsonl", line=3)
    rows = swap_no_call([weather, example("Hi", [], ["pay_bill"])], 25, POOL, random.Random(0))
    assert len(rows) == 25
    for row in rows:
        names = {tool_name(t) for t in row.tools}
        assert row.calls == [] and row.query == weather.query and 1 <= len(names) <= 3
        assert "get_rain" not in names and "get_weather_forecast" not in names  # "forecast" is in its description
        assert row.path == "x.jsonl:3~swapped"
    assert swap_no_call([example("Hi", [], ["pay_bill"])], 5, POOL, random.Random(0)) == []  # only call rows swap


def test_near_no_call_rows_offer_siblings_that_cannot_serve_the_request():
    domain = [tool("convert_temperature", "Convert a temperature between units."),
              tool("convert_length_units", "Convert a length."), tool("loan_monthly_payment", "Monthly loan payment."),
              tool("temperature_alert", "Alert when it gets hot."), tool("web_search", "Search the web.")]
    asked = Example(query="70 F in Celsius?", calls=[{"name": "convert_temperature", "arguments": {}}],
                    tools=domain, path="bank.yaml", line=7)
    rows = swap_near([asked, example("Hi", [], ["pay_bill", "get_rain"]),
                      example("Only one", ["pay_bill"], ["pay_bill"])], 40, random.Random(0))
    assert len(rows) == 40
    offered = set()
    for row in rows:
        names = {tool_name(t) for t in row.tools}
        assert row.calls == [] and row.query == asked.query and names
        assert row.path == "bank.yaml:7~near" and row.line is None
        offered |= names
    # a shared verb ("convert") is no sign of serving; a shared topic word ("temperature") or a catch-all is
    assert offered == {"convert_length_units", "loan_monthly_payment"}
    assert swap_near([example("Only one", ["pay_bill"], ["pay_bill"])], 5, random.Random(0)) == []


def test_near_rows_join_their_origin_split_and_are_counted():
    corpus = build_corpus({**CFG, "compose_parallel": 0, "swap_no_call": 0, "swap_near": 300,
                           "bfcl_categories": ["exec_simple"]}, seed=7)
    assert corpus.report["swapped_near"] == 300
    side = {name: {normalise_text(m["content"]) for r in rows for m in r["messages"] if m["role"] == "user"
                   and r["meta"]["calls"]} for name, rows in (("train", corpus.train), ("valid", corpus.valid))}
    declines = [(name, r) for name, rows in (("train", corpus.train), ("valid", corpus.valid)) for r in rows
                if not r["meta"]["calls"]]
    asked = [(name, normalise_text(next(m["content"] for m in r["messages"] if m["role"] == "user")))
             for name, r in declines]
    origin_side = [(name, q) for name, q in asked if q in side["train"] | side["valid"]]
    assert len(origin_side) >= 280  # near rows ask a question that is also asked with its tool
    assert all(q in side[name] for name, q in origin_side)  # ... on the same side of the split


def _weather(city: str, line: int, unit: str = "celsius") -> Example:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
              "required": ["city"]}
    get = {"type": "function", "function": {"name": "get_weather", "description": "Weather now.", "parameters": schema}}
    return Example(query=f"What's the weather in {city} in {unit}?", calls=[{"name": "get_weather", "arguments":
                   {"city": city, "unit": unit}}], tools=[get], path="bank.yaml", line=line)


def test_varied_rows_list_values_in_one_clause_with_one_call_each():
    """BFCL's parallel requests list several values in one clause ("radius 3, 5 and 7"): a varied row
    states its origin's value and 1..max-1 others where the origin stated it, one call per value, in
    the order written, every other argument kept."""
    cities = ["Oslo", "Lima", "Quito", "Hanoi", "Perth", "Dakar"]
    singles = [_weather(c, i) for i, c in enumerate(cities)] + [_weather("Rome", 9, "fahrenheit")]
    rows = vary_parallel(singles, 60, random.Random(0), max_values=4)
    assert len(rows) == 60 and {len(r.calls) for r in rows} == {2, 3, 4}
    for row in rows:
        assert row.path.endswith("~varied") and row.line is None
        assert all(c["name"] == "get_weather" for c in row.calls)
        cities_called = [c["arguments"]["city"] for c in row.calls]
        units = [c["arguments"]["unit"] for c in row.calls]
        if len(set(cities_called)) > 1:  # the city was varied: one unit for all
            assert len(set(units)) == 1 and row.query.endswith(f"in {units[0]}?")
            where = [row.query.index(c) for c in cities_called]
        else:  # the unit was varied ("in celsius and fahrenheit"): one city
            assert sorted(units) == ["celsius", "fahrenheit"] and row.query.count(cities_called[0]) == 1
            where = [row.query.index(u) for u in units]
        assert where == sorted(where) and len(set(cities_called + units)) == len(row.calls) + 1
    assert rows == vary_parallel(singles, 60, random.Random(0), max_values=4)


def test_values_that_cannot_be_listed_are_not_varied():
    number = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
              "required": ["a", "b"]}
    hyp = {"type": "function", "function": {"name": "hypotenuse", "description": "Hypotenuse.", "parameters": number}}
    two_numbers = [Example(query=f"hypotenuse of legs {a} and {b}", calls=[{"name": "hypotenuse", "arguments":
                           {"a": a, "b": b}}], tools=[hyp], path="x.jsonl", line=a) for a, b in ((3, 4), (5, 12))]
    text = {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}
    mail = {"type": "function", "function": {"name": "send_mail", "description": "Mail.", "parameters": text}}
    prose = ["see you at noon, ok?", "running late today, sorry"]
    bodies = [Example(query=f"mail: {b}", calls=[{"name": "send_mail", "arguments": {"body": b}}], tools=[mail],
                      path="x.jsonl", line=i) for i, b in enumerate(prose)]
    article = [_weather("Oslo", 1), _weather("Lima", 2, "fahrenheit")]
    article = [replace(ex, query=ex.query.replace("the weather in", "a forecast for a")) for ex in article]
    assert vary_parallel(two_numbers + bodies, 10, random.Random(0), max_values=3) == []  # "3, 5 and 4"; prose
    varied = vary_parallel(article, 10, random.Random(0), max_values=3)
    assert varied and all(len({c["arguments"]["city"] for c in r.calls}) == 1 for r in varied)  # the unit; no "a Oslo"


BOOK = {"type": "function", "function": {"name": "book_table", "description": "Book a restaurant table.",
        "parameters": {"type": "object", "properties": {
            "guests": {"type": "integer"}, "city": {"type": "string"}, "terrace": {"type": "boolean"}},
            "required": ["guests", "city"]}}}


def _booking(query: str, guests: int, city: str, line: int) -> Example:
    return Example(query=query, calls=[{"name": "book_table", "arguments": {"guests": guests, "city": city,
                                                                            "terrace": True}}],
                   tools=[BOOK], path="bank.yaml", line=line)


def test_paired_rows_vary_two_neighbouring_values_in_step():
    """BFCL's "$30.45 in Chicago and $52.33 in Sacramento": the segment from one value to the next is
    listed with new pairs, one call per pair in the order written, both values new in every call,
    the unstated argument kept."""
    cities = ["Oslo", "Lima", "Quito", "Hanoi", "Perth", "Dakar"]
    singles = [_booking(f"Book a table for {g} in {c} please", g, c, i) for i, (g, c) in enumerate(zip(range(2, 8), cities))]
    rows = vary_pairs(singles, 40, random.Random(0), max_values=3)
    assert len(rows) == 40 and {len(r.calls) for r in rows} == {2, 3}
    for row in rows:
        assert row.path.endswith("~paired") and row.line is None and row.query.startswith("Book a table for ")
        guests = [c["arguments"]["guests"] for c in row.calls]
        called = [c["arguments"]["city"] for c in row.calls]
        assert len(set(guests)) == len(set(called)) == len(row.calls)  # both values new in every call
        assert all(c["arguments"]["terrace"] is True for c in row.calls)
        where = [row.query.index(f"{g} in {c}") for g, c in zip(guests, called)]
        assert where == sorted(where) and row.query.endswith(" please")
    assert rows == vary_pairs(singles, 40, random.Random(0), max_values=3)


def test_values_apart_or_ambiguous_are_not_paired():
    cities = ["Oslo", "Lima", "Quito"]
    apart = [_booking(f"Book {g} seats. The city is {c}", g, c, i) for i, (g, c) in enumerate(zip((2, 3, 4), cities))]
    far = [_booking(f"Book {g} seats at some nice place in {c}", g, c, i)
           for i, (g, c) in enumerate(zip((2, 3, 4), cities))]
    numbers = [_booking(f"At 8 book {g} in {c}", g, c, i) for i, (g, c) in enumerate(zip((2, 3, 4), cities))]
    joined = [_booking(f"Book {g} and {c}", g, c, i) for i, (g, c) in enumerate(zip((2, 3, 4), cities))]
    assert vary_pairs(apart + far + numbers + joined, 10, random.Random(0), max_values=3) == []
    assert vary_pairs(apart, 0, random.Random(0)) == []
