"""Augmentation: which argument values become slots, and that every refilled row says one thing."""

import random
import re
from collections import Counter
from decimal import Decimal

import pytest

from calltune.data.augment import augment, find_slots, observed_values, refill, stated, without_optional
from calltune.data.examples import Example, example_errors
from calltune.data.spelling import find_dates, find_numbers, find_times

TOOLS = [
    {"type": "function", "function": {"name": "calculator", "description": "Maths.", "parameters": {
        "type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
        "type": "object", "properties": {
            "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["location"]}}},
    {"type": "function", "function": {"name": "add_event", "description": "Calendar.", "parameters": {
        "type": "object", "properties": {
            "title": {"type": "string"}, "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
            "start_time": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"},
            "minutes": {"type": "integer", "minimum": 5}}, "required": ["title", "date", "start_time"]}}},
    {"type": "function", "function": {"name": "remind", "description": "Reminder.", "parameters": {
        "type": "object", "properties": {
            "text": {"type": "string"}, "at": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"}},
        "required": ["text", "at"]}}},
    {"type": "function", "function": {"name": "send_email", "description": "Email.", "parameters": {
        "type": "object", "properties": {
            "to": {"type": "array", "items": {"type": "string"}}, "subject": {"type": "string"},
            "body": {"type": "string"}}, "required": ["to", "subject", "body"]}}},
]


def ex(query, *calls, system=None, accept=None, line=1):
    return Example(query=query, calls=[{"name": n, "arguments": a} for n, a in calls], tools=TOOLS,
                   path="examples.jsonl", line=line, system=system, accept=accept)


# Other examples the refills draw values from (what a user's file would hold).
POOL = [
    ex("Weather in Oslo in Fahrenheit", ("get_weather", {"location": "Oslo", "unit": "fahrenheit"})),
    ex("Weather in Lima in Celsius", ("get_weather", {"location": "Lima", "unit": "celsius"})),
    ex("Is it cold in Cape Town?", ("get_weather", {"location": "Cape Town"})),
    ex("Schedule a board meeting on 2025-10-28 at 09:00",
       ("add_event", {"title": "Board meeting", "date": "2025-10-28", "start_time": "09:00"})),
    ex("Schedule a piano recital on 2025-12-06 at 18:00",
       ("add_event", {"title": "Piano recital", "date": "2025-12-06", "start_time": "18:00"})),
    ex("Remind me to pay rent on 2025-07-01 at 08:00", ("remind", {"text": "Pay rent", "at": "2025-07-01T08:00"})),
    ex("Remind me to call the bank on 2025-07-02 at 09:00",
       ("remind", {"text": "Call the bank", "at": "2025-07-02T09:00"})),
]


def variants(example, n=12, seed=0):
    slots = find_slots(example)
    assert slots, "expected slots"
    rng, observed = random.Random(seed), observed_values(POOL + [example])
    rows = [refill(example, slots, observed, rng) for _ in range(n)]
    rows = [r for r in rows if r is not None]
    assert rows and all(example_errors(r) == [] for r in rows)
    return rows


def numbers(text):
    return [m.value for m in find_numbers(text)]


def test_numbers_written_with_commas_decimals_or_words_are_refilled_in_the_same_spelling():
    split = ex("Split a $1,186.40 dinner bill between 4 people", ("calculator", {"expression": "1186.40 / 4"}))
    for row in variants(split):
        amount, people = numbers(row.query)
        assert row.calls[0]["arguments"]["expression"] == f"{amount:.2f} / {people}"
        assert re.search(r"\$\d{1,3}(,\d{3})*\.\d\d dinner", row.query) and people != 4
    cold = ex("How cold will it get in Helsinki over the next four days?",
              ("get_weather", {"location": "Helsinki", "days": 4}))
    words = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
    for row in variants(cold):
        word = re.search(r"next (\w+) days", row.query)[1]
        assert words[word] == row.calls[0]["arguments"]["days"] and word != "four"


def test_enum_values_follow_their_spelling_in_the_query():
    example = ex("Temperature in Toronto in Celsius please",
                 ("get_weather", {"location": "Toronto", "unit": "celsius"}))
    assert {s.kind for s in find_slots(example)} == {"text"}
    for row in variants(example):
        unit = row.calls[0]["arguments"]["unit"]
        assert f"in {unit.capitalize()} please" in row.query and unit == "fahrenheit"


def test_multi_word_values_keep_the_case_the_query_wrote_them_in():
    example = ex("Schedule a team sync on 2026-03-12 at 14:00",
                 ("add_event", {"title": "Team sync", "date": "2026-03-12", "start_time": "14:00"}))
    titles = set()
    for row in variants(example):
        title = row.calls[0]["arguments"]["title"]
        titles.add(title)
        assert f"Schedule a {title[0].lower()}{title[1:]} on" in row.query
    assert titles <= {"Board meeting", "Piano recital"} and titles


def test_a_value_written_twice_is_refilled_everywhere_at_once():
    example = ex("Put Gym on my calendar on 2025-09-15 at 7:00 and again on 2025-09-17 at 7:00",
                 ("add_event", {"title": "Gym", "date": "2025-09-15", "start_time": "07:00"}),
                 ("add_event", {"title": "Gym", "date": "2025-09-17", "start_time": "07:00"}))
    for row in variants(example):
        times = [m.value for m in find_times(row.query)]
        dates = [m.value for m in find_dates(row.query)]
        first, second = (c["arguments"] for c in row.calls)
        assert times == [first["start_time"]] * 2 == [second["start_time"]] * 2 and times[0] != "07:00"
        assert dates == [first["date"], second["date"]] and dates[0] != dates[1]
        assert first["title"] == second["title"] and first["title"] in row.query  # one mention, two arguments


def test_a_value_the_query_does_not_state_is_left_as_it_is():
    example = ex("Is it going to rain in Seattle tomorrow?", ("get_weather", {"location": "Seattle", "days": 2}))
    assert [(s.kind, s.value) for s in find_slots(example)] == [("text", "Seattle")]
    rows = variants(example)
    assert {r.calls[0]["arguments"]["days"] for r in rows} == {2}
    assert all(r.query.endswith(" tomorrow?") and r.calls[0]["arguments"]["location"] in r.query for r in rows)


@pytest.mark.parametrize("value, text, expected", [
    (9.81, "dropped from 100 m", False),
    (100, "dropped from one hundred meters", True),  # numbers in their common spellings
    ("Fahrenheit", "weather in Oslo in fahrenheit", True),  # any case, whole words
    ("Fahrenheit", "weather in Oslo in fahr", False),
    ("New York", "flights to new  york", True),
    ("2026-03-03", "on March 3 2026", True),  # dates and times as slot detection reads them
    ("19:00", "at 7pm", True),
    (["Oslo", "Rome"], "via Rome", True),  # a list: any item
    ({"city": "Rome", "days": 4}, "four days", True),  # an object: any value
    (True, "yes, include dissent", False),  # never written, so never stated
    (None, "none", False),
    ("a", "a table", False),  # a stop word as a value matches nothing
])
def test_stated_reads_values_the_way_slot_detection_does(value, text, expected):
    assert stated(value, text) is expected


def test_derived_values_are_rendered_consistently_or_left_alone():
    # "7pm" -> 19:00 is one value in two spellings: refilled in both.
    seven = ex("Remind me to call the bank on 2025-06-11 at 7pm",
               ("remind", {"text": "Call the bank", "at": "2025-06-11T19:00"}))
    for row in variants(seven):
        (said,), stored = find_times(row.query), row.calls[0]["arguments"]["at"]
        assert re.fullmatch(r"\d{1,2}(am|pm)", row.query[said.start:said.end]) and stored.endswith("T" + said.value)
        assert stored[:10] == find_dates(row.query)[0].value
    # 17% -> 0.17: a number the arguments only derive; no number of that query is touched.
    assert find_slots(ex("What's 17% of 2,340?", ("calculator", {"expression": "0.17 * 2340"}))) == []
    # 90 minutes from "10:00 to 11:30": the times stay; the title and date may change.
    booked = ex("Book 'Review' on 2025-10-01 from 10:00 to 11:30",
                ("add_event", {"title": "Review", "date": "2025-10-01", "start_time": "10:00", "minutes": 90}))
    assert {s.kind for s in find_slots(booked)} == {"text", "date"}
    # 15:00 = "an hour before" 4pm: the calls derive one time from the other, so neither moves.
    before = ex("Add a dentist appointment on 2025-06-12 at 4pm and remind me an hour before",
                ("add_event", {"title": "Dentist appointment", "date": "2025-06-12", "start_time": "16:00"}),
                ("remind", {"text": "Dentist appointment", "at": "2025-06-12T15:00"}))
    assert "time" not in {s.kind for s in find_slots(before)}
    # a date next to a weekday may be tied to it
    friday = ex("Book 'Party' on Friday 2025-12-12 at 18:00",
                ("add_event", {"title": "Party", "date": "2025-12-12", "start_time": "18:00"}))
    assert "date" not in {s.kind for s in find_slots(friday)}


def test_a_value_echoed_in_another_argument_or_an_alternative_is_left_alone():
    anna = ex("Email anna@example.com that the invoice is attached, subject 'Invoice'",
              ("send_email", {"to": ["anna@example.com"], "subject": "Invoice",
                              "body": "Hi Anna, the invoice is attached."}))
    assert "anna@example.com" not in {s.value for s in find_slots(anna)}
    chosen = ex("Search weather Oslo", ("get_weather", {"location": "Oslo"}), accept=[{"location": ["Oslo, Norway"]}])
    assert find_slots(chosen) == []


def test_examples_with_history_tool_results_or_no_calls_are_not_augmented():
    assert find_slots(ex("Tell me a joke")) == []
    with_results = ex("Weather in Oslo?", ("get_weather", {"location": "Oslo"}))
    with_results.tool_results, with_results.answer = [{"t": 3}], "3 degrees."
    assert find_slots(with_results) == []


SPEC = {"enabled": True, "per_example": 3, "target_per_tool": 0}


def run(examples, seed=1, spec=SPEC, counts=None):
    return augment(examples, POOL + examples, spec, seed, Counter(counts or {}), set())


def test_augment_is_seeded_validated_and_free_of_duplicates():
    examples = [ex("Weather in Oslo in Fahrenheit", ("get_weather", {"location": "Oslo", "unit": "fahrenheit"})),
                ex("Schedule a team sync on 2026-03-12 at 14:00",
                   ("add_event", {"title": "Team sync", "date": "2026-03-12", "start_time": "14:00"}), line=2),
                ex("Tell me a joke", line=3)]
    first, again, other = run(examples), run(examples), run(examples, seed=2)
    queries = [r.query for _, r in first.rows]
    assert queries == [r.query for _, r in again.rows] != [r.query for _, r in other.rows]
    assert len(queries) == len(set(queries)) == 6 and {i for i, _ in first.rows} == {0, 1}
    assert all(example_errors(r) == [] for _, r in first.rows)
    assert first.stats["examples_with_slots"] == 2 and first.stats["sources"] == 2


def test_target_per_tool_adds_rows_only_where_a_tool_has_few():
    examples = [ex(f"Weather in {c}", ("get_weather", {"location": c}), line=i) for i, c in enumerate(["Oslo", "Rome"])]
    assert len(run(examples, spec={**SPEC, "target_per_tool": 4}, counts={"get_weather": 2}).rows) == 2
    assert run(examples, spec={**SPEC, "target_per_tool": 4}, counts={"get_weather": 9}).rows == []
    capped = run(examples, spec={**SPEC, "per_example": 1, "target_per_tool": 40}, counts={"get_weather": 2})
    assert len(capped.rows) == 2
    assert run(examples, spec={**SPEC, "enabled": False}).rows == []


def test_draws_the_schema_rejects_are_dropped_and_counted():
    strict = [dict(t, function=dict(t["function"])) for t in TOOLS]
    strict[1]["function"]["parameters"] = {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string", "pattern": "^[A-Z][a-z]+$"}}}  # one capitalised word only
    example = Example(query="Is it cold in Oslo?", calls=[{"name": "get_weather", "arguments": {"location": "Oslo"}}],
                      tools=strict, path="e.jsonl", line=1)
    pool = [Example(query=f"Is it cold in {c}?", calls=[{"name": "get_weather", "arguments": {"location": c}}],
                    tools=strict, path="e.jsonl", line=i) for i, c in enumerate(["Cape Town", "Buenos Aires", "Lima"])]
    result = augment([example], [example] + pool, {**SPEC, "per_example": 6}, 0, Counter(), set())
    assert result.stats["dropped_invalid"] > 0
    assert all(example_errors(r) == [] and " " not in r.calls[0]["arguments"]["location"] for _, r in result.rows)


def test_a_constant_of_a_formula_stays_and_a_number_never_loses_its_plural():
    example = ex("Split the bill between 4 people", ("calculator", {"expression": "100 / 4"}))
    assert [s.value for s in find_slots(example)] == [Decimal(4)]  # 100 is not in the query: it stays
    for row in variants(example, n=30):
        (people,) = numbers(row.query)
        assert row.calls[0]["arguments"]["expression"] == f"100 / {people}" and people >= 2


@pytest.mark.parametrize("query, title, expected", [
    ("Add a classic ride on 2025-06-01 at 09:00", "Classic ride", {"a", "an"}),
])
def test_an_article_follows_the_word_after_it(query, title, expected):
    example = ex(query, ("add_event", {"title": title, "date": "2025-06-01", "start_time": "09:00"}))
    pool_titles = ["Evening swim", "Board meeting", "Open day"]
    pool = [ex(f"Add a {t.lower()} on 2025-06-02 at 10:00",
               ("add_event", {"title": t, "date": "2025-06-02", "start_time": "10:00"})) for t in pool_titles]
    observed = observed_values(pool + [example])
    rng = random.Random(3)
    seen = set()
    for _ in range(20):
        row = refill(example, find_slots(example), observed, rng)
        article, word = re.match(r"Add (an?) (\w+)", row.query).groups()
        assert article == ("an" if word[0] in "aeiou" else "a")
        seen.add(article)
    assert seen == expected


BIKES = [{"type": "function", "function": {"name": "reserve_bike", "description": "Hold bikes.", "parameters": {
    "type": "object", "properties": {
        "station": {"type": "string"}, "bike_type": {"type": "string", "enum": ["classic", "electric", "cargo"]},
        "priority": {"type": "string", "enum": ["low", "high"]}, "unit": {"type": "string", "enum": ["km", "miles"]}},
    "required": ["station"]}}}]


def bike(query, line=1, **arguments):
    return Example(query=query, calls=[{"name": "reserve_bike", "arguments": arguments}], tools=BIKES,
                   path="examples.jsonl", line=line)


@pytest.mark.parametrize("query, arguments, expected", [
    ("Any electric bikes at Riverside Park?", {"station": "Riverside Park", "bike_type": "electric"},
     "Any bikes at Riverside Park?"),
    ("Hold an electric bike at Union Square", {"station": "Union Square", "bike_type": "electric"},
     "Hold a bike at Union Square"),  # the article follows the word now after it
    ("Cargo bike at Union Square please", {"station": "Union Square", "bike_type": "cargo"},
     "Bike at Union Square please"),  # the first word of the query stays capitalised
])
def test_without_optional_takes_a_describing_value_out_of_query_and_call(query, arguments, expected):
    example = bike(query, **arguments)
    (row,) = without_optional(example, find_slots(example))
    assert row.query == expected
    assert row.calls == [{"name": "reserve_bike", "arguments": {"station": arguments["station"]}}]
    assert example.calls[0]["arguments"] == arguments and example_errors(row) == []  # the source is untouched


@pytest.mark.parametrize("query, arguments", [
    ("Reserve a bike at Union Square in miles", {"station": "Union Square", "unit": "miles"}),  # after a preposition
    ("Reserve a bike at Union Square, electric", {"station": "Union Square", "bike_type": "electric"}),  # at the end
    ("Reserve a bike at Union Square, electric please", {"station": "Union Square", "bike_type": "electric"}),
    ("A low priority hold at Union Square", {"station": "Union Square", "priority": "low"}),  # its parameter's name
    ("Reserve at Union Square bikes", {"station": "Union Square"}),  # a required value
])
def test_without_optional_leaves_values_whose_words_cannot_go(query, arguments):
    example = bike(query, **arguments)
    assert without_optional(example, find_slots(example)) == []


def test_drop_optional_adds_each_family_row_without_its_optional_value_in_the_same_split_family():
    examples = [bike("Any electric bikes at Riverside Park?", station="Riverside Park", bike_type="electric"),
                bike("Cargo bikes at Market Square", line=2, station="Market Square", bike_type="cargo")]
    spec = {**SPEC, "per_example": 2}
    plain = augment(examples, examples, spec, 0, Counter(), set())
    dropped = augment(examples, examples, {**spec, "drop_optional": True}, 0, Counter(), set())
    kept = {r.query for _, r in plain.rows}
    assert kept <= {r.query for _, r in dropped.rows}  # the refills as before, and then
    extra = [(i, r) for i, r in dropped.rows if r.query not in kept]
    assert dropped.stats["without_optional"] == len(extra) >= 3
    assert all("bike_type" not in r.calls[0]["arguments"] and example_errors(r) == [] for _, r in extra)
    made = {r.query for _, r in dropped.rows} | {e.query for e in examples}
    assert len(made) == len(dropped.rows) + len(examples)  # no query twice
    for source, row in extra:  # each row stays with the example it came from (split by source)
        assert row.calls[0]["arguments"]["station"] in row.query and row.source == examples[source].source
