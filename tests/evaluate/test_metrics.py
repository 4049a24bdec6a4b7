"""Judging hand-written predictions, and aggregate numbers worked out by hand."""

import pytest

from calltune.evaluate.metrics import (
    EQUIVALENT, EXACT, UNPARSEABLE, WRONG, aggregate, canonical_json, judge, normalize_string, percentile,
)
from calltune.evaluate.predictions import Prediction


def tool(name, properties, required=()):
    return {"type": "function", "function": {
        "name": name, "description": name,
        "parameters": {"type": "object", "properties": properties, "required": list(required)},
    }}


TOOLS = [
    tool("get_weather", {
        "location": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        "days": {"type": "integer"},
    }, required=["location"]),
    tool("convert_currency", {
        "amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"},
    }, required=["amount", "from", "to"]),
    tool("create_event", {
        "title": {"type": "string"},
        "attendees": {"type": "array", "items": {"type": "string"}},
        "reminder": {"type": "object", "properties": {
            "minutes": {"type": "integer"}, "method": {"type": "string", "enum": ["email", "popup"]},
        }, "required": ["minutes"]},
        "all_day": {"type": "boolean"},
    }, required=["title"]),
]


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


WEATHER = call("get_weather", location="Tokyo, Japan", unit="celsius")


def check(calls, expected, parse_error=None):
    return judge(calls, parse_error, expected, TOOLS)


# ---- the acceptance cases ----------------------------------------------------------------------

def test_right_call_is_exact():
    j = check([call("get_weather", location="Tokyo, Japan", unit="celsius")], [WEATHER])
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (EXACT, True, True, True)
    assert j.reason == "exact match"


def test_wrong_argument_value():
    j = check([call("get_weather", location="Tokyo, Japan", unit="fahrenheit")], [WEATHER])
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (WRONG, False, False, True)
    assert j.reason == "arg 'unit': expected 'celsius', got 'fahrenheit'"


def test_enum_value_outside_the_enum_names_the_enum():
    j = check([call("get_weather", location="Tokyo, Japan", unit="kelvin")], [WEATHER])
    assert not j.ast_correct
    assert j.reason == "arg 'unit': 'kelvin' is not one of 'celsius', 'fahrenheit'"


def test_wrong_type_string_for_integer():
    j = check([call("get_weather", location="Paris", days="3")], [call("get_weather", location="Paris", days=3)])
    assert (j.verdict, j.ast_correct) == (WRONG, False)
    assert j.reason == "arg 'days': expected integer, got string '3'"


def test_wrong_type_float_for_integer_and_bool_for_number():
    j = check([call("get_weather", location="Paris", days=3.5)], [call("get_weather", location="Paris", days=3)])
    assert j.reason == "arg 'days': expected integer, got number 3.5"
    money = call("convert_currency", amount=10, **{"from": "USD", "to": "EUR"})
    j = check([call("convert_currency", amount=True, **{"from": "USD", "to": "EUR"})], [money])
    assert j.reason == "arg 'amount': expected number, got boolean true"


def test_wrong_function_name():
    j = check([call("convert_currency", amount=1, **{"from": "A", "to": "B"})], [WEATHER])
    assert (j.verdict, j.ast_correct, j.names_match) == (WRONG, False, False)
    assert j.reason == "expected call get_weather, got convert_currency"


def test_extra_unknown_argument():
    j = check([call("get_weather", location="Tokyo, Japan", unit="celsius", foo=1)], [WEATHER])
    assert (j.verdict, j.names_match) == (WRONG, True)
    assert j.reason == "unknown arg 'foo'"


def test_missing_required_argument():
    j = check([call("get_weather", unit="celsius")], [WEATHER])
    assert (j.verdict, j.ast_correct) == (WRONG, False)
    assert j.reason == "missing required 'location'"


def test_parallel_calls_reordered_are_equivalent_not_exact():
    paris, rome = call("get_weather", location="Paris"), call("get_weather", location="Rome", days=2)
    money = call("convert_currency", amount=5, **{"from": "USD", "to": "EUR"})
    j = check([money, rome, paris], [paris, money, rome])
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (EQUIVALENT, False, True, True)
    assert j.reason == "equivalent, not exact: call 1: expected call get_weather, got convert_currency"


def test_parallel_calls_with_one_wrong_blame_that_call():
    paris, rome = call("get_weather", location="Paris"), call("get_weather", location="Rome")
    j = check([call("get_weather", location="Rome"), call("get_weather", location="Berlin")], [paris, rome])
    assert (j.verdict, j.names_match) == (WRONG, True)
    assert j.reason == "get_weather: arg 'location': expected 'Paris', got 'Berlin'"


def test_parallel_wrong_count():
    paris, rome = call("get_weather", location="Paris"), call("get_weather", location="Rome")
    j = check([paris], [paris, rome])
    assert (j.verdict, j.names_match) == (WRONG, False)
    assert j.reason == "expected 2 calls (get_weather, get_weather), got 1 (get_weather)"


def test_no_call_expected_and_none_made():
    j = check([], [])
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (EXACT, True, True, True)
    assert j.reason == "no call, as expected"


def test_no_call_expected_but_a_call_made():
    j = check([WEATHER], [])
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (WRONG, False, False, False)
    assert j.reason == "expected no call, got get_weather"


def test_call_expected_but_none_made():
    j = check([], [WEATHER])
    assert (j.verdict, j.ast_correct, j.names_match) == (WRONG, False, False)
    assert j.reason == "expected get_weather, got no call"


@pytest.mark.parametrize("expected", [[WEATHER], []])
def test_unparseable_output_is_wrong_even_with_partial_calls(expected):
    j = check([WEATHER], expected, parse_error="unterminated call")
    assert (j.verdict, j.exact_match, j.ast_correct, j.names_match) == (UNPARSEABLE, False, False, False)
    assert j.reason == "parse error: unterminated call"


# ---- value rules -------------------------------------------------------------------------------

def test_int_accepted_for_number_and_exact_treats_1_as_1_0():
    want = call("convert_currency", amount=10.0, **{"from": "USD", "to": "EUR"})
    j = check([call("convert_currency", amount=10, **{"from": "USD", "to": "EUR"})], [want])
    assert j.verdict == EXACT
    assert canonical_json({"b": [1.0, 2.5], "a": True}) == canonical_json({"a": True, "b": [1, 2.5]})


def test_numbers_within_tolerance_are_equivalent_and_beyond_are_wrong():
    want = call("convert_currency", amount=0.3, **{"from": "USD", "to": "EUR"})
    close = check([call("convert_currency", amount=0.1 + 0.2, **{"from": "USD", "to": "EUR"})], [want])
    assert close.verdict == EQUIVALENT
    far = check([call("convert_currency", amount=0.30001, **{"from": "USD", "to": "EUR"})], [want])
    assert far.reason == "arg 'amount': expected 0.3, got 0.30001"


def test_strings_compare_after_case_space_and_punctuation_normalisation():
    j = check([call("get_weather", location="  tokyo   JAPAN. ", unit="Celsius")], [WEATHER])
    assert j.verdict == EQUIVALENT
    assert j.reason == "equivalent, not exact: arg 'location': expected 'Tokyo, Japan', got '  tokyo   JAPAN. '"
    assert normalize_string("San Francisco,\tCA") == normalize_string("san francisco ca")


def test_strings_follow_bfcls_rule_and_keep_other_characters():
    # bfcl-eval drops whitespace and , . / - _ * ^ only: the two checkers must agree on these
    assert normalize_string("2x**2") == normalize_string("2x^2")
    assert normalize_string("April 1, 2024") == normalize_string("april 1 2024")
    assert normalize_string("C#") != normalize_string("C")
    assert normalize_string("Hello!") != normalize_string("Hello")


def test_an_exact_match_that_breaks_the_schema_is_wrong():
    tools = [{"name": "repeat", "parameters": {"type": "object", "properties": {
        "times": {"type": "integer"}, "loud": {"type": "boolean"}}, "required": ["times", "loud"]}}]
    as_float = judge([call("repeat", times=3.0, loud=True)], None, [call("repeat", times=3, loud=True)], tools)
    assert (as_float.verdict, as_float.exact_match) == (WRONG, False)
    assert as_float.reason == "arg 'times': expected integer, got number 3.0"
    left_out = judge([call("repeat", times=3)], None, [call("repeat", times=3)], tools,
                     accept=[{"loud": [True, ""]}])  # an accepted "may be left out" does not beat `required`
    assert (left_out.verdict, left_out.reason) == (WRONG, "missing required 'loud'")
    assert judge([call("repeat", times=3, loud=True)], None, [call("repeat", times=3, loud=True)], tools).exact_match
    abbreviated = check([call("get_weather", location="Tokyo Jpn")], [call("get_weather", location="Tokyo, Japan")])
    assert abbreviated.verdict == WRONG


def test_lists_compare_element_wise_in_order():
    want = call("create_event", title="Sync", attendees=["Ann", "Bob"])
    assert check([call("create_event", title="sync", attendees=["ann", "BOB"])], [want]).verdict == EQUIVALENT
    swapped = check([call("create_event", title="Sync", attendees=["Bob", "Ann"])], [want])
    assert swapped.reason == "arg 'attendees[0]': expected 'Ann', got 'Bob'"
    short = check([call("create_event", title="Sync", attendees=["Ann"])], [want])
    assert short.reason == "arg 'attendees': expected 2 items, got 1"
    not_list = check([call("create_event", title="Sync", attendees="Ann, Bob")], [want])
    assert not_list.reason == "arg 'attendees': expected array, got string 'Ann, Bob'"


def test_nested_objects_use_the_nested_schema():
    want = call("create_event", title="Sync", reminder={"minutes": 10, "method": "email"})
    same = check([call("create_event", title="Sync", reminder={"method": "EMAIL", "minutes": 10})], [want])
    assert same.verdict == EQUIVALENT
    missing = check([call("create_event", title="Sync", reminder={"method": "email"})], [want])
    assert missing.reason == "missing required 'reminder.minutes'"
    unknown = check([call("create_event", title="Sync", reminder={"minutes": 10, "method": "email", "x": 1})], [want])
    assert unknown.reason == "unknown arg 'reminder.x'"
    wrong = check([call("create_event", title="Sync", reminder={"minutes": 15, "method": "email"})], [want])
    assert wrong.reason == "arg 'reminder.minutes': expected 10, got 15"


def test_booleans_are_exact():
    want = call("create_event", title="Sync", all_day=True)
    j = check([call("create_event", title="Sync", all_day=False)], [want])
    assert j.reason == "arg 'all_day': expected true, got false"
    assert check([call("create_event", title="Sync", all_day="true")], [want]).reason == (
        "arg 'all_day': expected boolean, got string 'true'")


def test_optional_arguments_omitted_only_where_the_default_stands_in():
    with_default = call("get_weather", location="Tokyo, Japan", unit="celsius")
    assert check([call("get_weather", location="Tokyo, Japan")], [with_default]).verdict == EQUIVALENT
    fahrenheit = call("get_weather", location="Tokyo, Japan", unit="fahrenheit")
    j = check([call("get_weather", location="Tokyo, Japan")], [fahrenheit])
    assert j.reason == "missing arg 'unit': expected 'fahrenheit'"
    j = check([call("get_weather", location="Tokyo, Japan", days=2)], [call("get_weather", location="Tokyo, Japan")])
    assert j.reason == "unexpected arg 'days': expected it omitted, got 2"


def test_undeclared_tool_uses_the_expected_arguments_as_its_signature():
    want = call("lookup", q="Cats")
    assert check([call("lookup", q="cats")], [want]).verdict == EQUIVALENT
    assert check([call("lookup")], [want]).reason == "missing required 'q'"
    assert check([call("lookup", q="cats", n=1)], [want]).reason == "unknown arg 'n'"


def test_bare_function_tools_are_accepted():
    bare = [t["function"] for t in TOOLS]
    j = judge([call("get_weather", location="x", foo=1)], None, [call("get_weather", location="x")], bare)
    assert j.reason == "unknown arg 'foo'"


def test_long_values_are_shortened_in_reasons():
    j = check([call("get_weather", location="y" * 200)], [call("get_weather", location="x")])
    assert j.reason.endswith("...") and len(j.reason) < 120


# ---- aggregation -------------------------------------------------------------------------------

def prediction(i, calls, expected, latency, tokens, parse_error=None):
    return Prediction(
        id=f"ex-{i}", prompt="p", raw_output="r", calls=calls, expected=expected, parse_error=parse_error,
        latency_s=latency, n_generated_tokens=tokens, judgement=judge(calls, parse_error, expected, TOOLS),
    )


def test_aggregate_numbers_worked_out_by_hand():
    money = call("convert_currency", amount=5, **{"from": "USD", "to": "EUR"})
    paris = call("get_weather", location="Paris")
    preds = [
        prediction(0, [WEATHER], [WEATHER], 1.0, 10),                                   # exact
        # 1: equivalent (location differs only in case and punctuation); 2: wrong (unit not in enum)
        prediction(1, [call("get_weather", location="tokyo japan", unit="celsius")], [WEATHER], 2.0, 10),
        prediction(2, [call("get_weather", location="Tokyo, Japan", unit="kelvin")], [WEATHER], 3.0, 10),
        prediction(3, [paris], [money], 4.0, 10),                                       # wrong name
        prediction(4, [], [money], 5.0, 2),                                             # no call made
        prediction(5, [money, paris], [paris, money], 6.0, 20),                         # parallel reordered
        prediction(6, [], [], 7.0, 3),                                                  # no-call right
        prediction(7, [WEATHER], [], 8.0, 10),                                          # no-call wrong
        prediction(8, [], [], 9.0, 5, parse_error="unterminated call"),                 # unparseable
        prediction(9, [], [], 10.0, 0),                                                 # no-call right
    ]
    m = aggregate(preds, size_mb=543.21)
    # exact: 0, 6, 9 -> 3/10; AST adds 1 and 5 -> 5/10
    # names match: 0, 1, 2, 5, 6, 9 -> 6/10; parsed: 9/10
    # needing a call: 0..5 (6), with >= 1 call: 0, 1, 2, 3, 5 -> 5/6
    # no call expected: 6..9 (4), no call and parsed: 6, 9 -> 2/4
    # latencies 1..10: p50 = 5.5, p95 = 9 + 0.55 = 9.55; tokens 80 / 55 s
    # per tool: get_weather in 0, 1, 2, 5 -> AST ok 0, 1, 5 = 3/4; convert_currency in 3, 4, 5 -> 1/3
    assert m == {
        "n": 10,
        "exact_match": 0.3,
        "ast_accuracy": 0.5,
        "tool_name_accuracy": 0.6,
        "parse_valid_rate": 0.9,
        "call_rate": 0.8333,
        "irrelevance_accuracy": 0.5,
        "latency_p50_s": 5.5,
        "latency_p95_s": 9.55,
        "tokens_per_s": 1.4545,
        "size_mb": 543.21,
        "per_tool": {"convert_currency": 0.3333, "get_weather": 0.75},
    }
    assert list(m) == ["n", "exact_match", "ast_accuracy", "tool_name_accuracy", "parse_valid_rate", "call_rate",
                       "irrelevance_accuracy", "latency_p50_s", "latency_p95_s", "tokens_per_s", "size_mb", "per_tool"]


def test_aggregate_leaves_rates_without_examples_undefined():
    m = aggregate([prediction(0, [WEATHER], [WEATHER], 0.5, 4)])
    assert m["call_rate"] == 1.0 and m["irrelevance_accuracy"] is None and m["size_mb"] is None
    assert m["latency_p50_s"] == m["latency_p95_s"] == 0.5 and m["tokens_per_s"] == 8.0
    empty = aggregate([])
    assert empty["n"] == 0 and empty["exact_match"] is None and empty["latency_p50_s"] is None
    assert empty["tokens_per_s"] is None and empty["per_tool"] == {}


def test_percentile_interpolates_linearly():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None


# ---- accepted alternatives (BFCL possible answers) ---------------------------------------------

TOKYO_OR_SHORT = [{"location": ["Tokyo, Japan", "Tokyo"]}]


def test_exact_takes_any_accepted_value_and_ast_normalises_each():
    want = [call("get_weather", location="Tokyo, Japan")]
    j = judge([call("get_weather", location="Tokyo")], None, want, TOOLS, accept=TOKYO_OR_SHORT)
    assert (j.verdict, j.exact_match, j.ast_correct) == (EXACT, True, True)
    j = judge([call("get_weather", location="  TOKYO.")], None, want, TOOLS, accept=TOKYO_OR_SHORT)
    assert (j.verdict, j.ast_correct) == (EQUIVALENT, True)
    assert j.reason == "equivalent, not exact: arg 'location': expected one of 'Tokyo, Japan', 'Tokyo', got '  TOKYO.'"
    j = judge([call("get_weather", location="Kyoto")], None, want, TOOLS, accept=TOKYO_OR_SHORT)
    assert (j.verdict, j.ast_correct) == (WRONG, False)
    assert j.reason == "arg 'location': expected 'Tokyo, Japan', got 'Kyoto' (nor any of 1 other accepted value)"
    # without the alternatives the short form is wrong
    assert check([call("get_weather", location="Tokyo")], want).verdict == WRONG


def test_empty_string_among_accepted_values_lets_the_argument_be_left_out():
    want = [call("get_weather", location="Paris", days=3)]
    optional = [{"days": [3, ""]}]
    j = judge([call("get_weather", location="Paris")], None, want, TOOLS, accept=optional)
    assert (j.verdict, j.exact_match, j.ast_correct) == (EXACT, True, True)
    assert judge([call("get_weather", location="Paris", days=3)], None, want, TOOLS, accept=optional).exact_match
    j = judge([call("get_weather", location="Paris", days=4)], None, want, TOOLS, accept=optional)
    assert j.reason == "arg 'days': expected 3, got 4"
    # not left out when "" is not listed; the reason names every accepted value
    j = judge([call("get_weather", location="Paris")], None, want, TOOLS, accept=[{"days": [3, 4]}])
    assert (j.verdict, j.reason) == (WRONG, "missing arg 'days': expected one of 3, 4")
    assert check([call("get_weather", location="Paris")], want).reason == "missing arg 'days': expected 3"


def test_an_argument_only_in_accept_must_be_left_out_or_take_a_listed_value():
    want = [call("get_weather", location="Paris")]  # the importer left out days: its first answer was ""
    accept = [{"days": ["", 2]}]
    assert judge([call("get_weather", location="Paris", days=2)], None, want, TOOLS, accept=accept).exact_match
    assert judge([call("get_weather", location="Paris")], None, want, TOOLS, accept=accept).exact_match
    j = judge([call("get_weather", location="Paris", days=5)], None, want, TOOLS, accept=accept)
    assert (j.ast_correct, j.reason) == (False, "arg 'days': expected 2, got 5")


def test_parallel_calls_match_in_any_order_with_alternatives():
    want = [call("get_weather", location="Paris"), call("get_weather", location="Rome", days=2)]
    accept = [{"location": ["Paris", "Paris, France"]}, {"location": ["Rome", "Roma"], "days": [2, ""]}]
    in_order = [call("get_weather", location="Paris, France"), call("get_weather", location="Roma")]
    j = judge(in_order, None, want, TOOLS, accept=accept)
    assert (j.verdict, j.exact_match) == (EXACT, True)
    swapped = [call("get_weather", location="roma", days=2), call("get_weather", location="paris france")]
    j = judge(swapped, None, want, TOOLS, accept=accept)
    assert (j.verdict, j.ast_correct, j.names_match) == (EQUIVALENT, True, True)
    # the first call's alternatives do not leak to the second: "Paris, France" is no Rome
    wrong = [call("get_weather", location="Paris, France"), call("get_weather", location="Paris, France")]
    j = judge(wrong, None, want, TOOLS, accept=accept)
    assert (j.verdict, j.reason) == (WRONG, "get_weather: arg 'location': expected 'Rome', got 'Paris, France' "
                                            "(nor any of 1 other accepted value)")


@pytest.mark.parametrize("calls, expected, parse_error", [
    ([WEATHER], [WEATHER], None),
    ([call("get_weather", location="Tokyo, Japan", unit="fahrenheit")], [WEATHER], None),
    ([call("get_weather", location="Tokyo, Japan")], [WEATHER], None),
    ([call("get_weather", location="Tokyo, Japan", days=2)], [WEATHER], None),
    ([call("get_weather", location="tokyo japan", unit="celsius", foo=1)], [WEATHER], None),
    ([call("get_weather", unit="celsius")], [WEATHER], None),
    ([call("get_weather", location="Rome"), call("get_weather", location="Paris")],
     [call("get_weather", location="Paris"), call("get_weather", location="Rome")], None),
    ([WEATHER], [], None),
    ([], [WEATHER], None),
    ([WEATHER], [WEATHER], "unterminated call"),
    ([call("create_event", title="Sync", reminder={"minutes": 15})],
     [call("create_event", title="Sync", reminder={"minutes": 10})], None),
])
def test_no_alternatives_judge_as_before(calls, expected, parse_error):
    """accept=None and accept with nothing listed give the very same judgement (reason included)."""
    before = judge(calls, parse_error, expected, TOOLS)
    assert judge(calls, parse_error, expected, TOOLS, accept=None) == before
    assert judge(calls, parse_error, expected, TOOLS, accept=[{} for _ in expected]) == before


def test_an_empty_string_expected_value_is_a_value_not_an_omission():
    """Only "" inside accept means "may be left out"; an expected "" must still be given."""
    want = [call("lookup", q="")]
    assert judge([call("lookup")], None, want, TOOLS).reason == "missing required 'q'"
    assert judge([call("lookup", q="")], None, want, TOOLS).exact_match


def test_accept_must_parallel_expected():
    with pytest.raises(ValueError, match="accept has 2 entries for 1 expected calls"):
        judge([WEATHER], None, [WEATHER], TOOLS, accept=[{}, {}])
