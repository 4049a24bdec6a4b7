"""Typed values in text: found with their style, written back in that style."""

from decimal import Decimal

import pytest

from calltune.data.spelling import find_all, find_dates, find_numbers, find_times, render


def found(text):
    return [(m.kind, text[m.start:m.end], m.value) for m in find_all(text)]


def test_numbers_in_their_common_spellings():
    text = "Split 2,340 and 186.40 between four people, 5-day trip, room 4B, 17%"
    assert [(text[m.start:m.end], m.value) for m in find_numbers(text)] == [
        ("2,340", Decimal("2340")), ("186.40", Decimal("186.40")), ("four", Decimal(4)), ("5", Decimal(5)),
        ("17", Decimal(17))]


@pytest.mark.parametrize("written, value, expected", [
    ("2,340", Decimal("7802"), "7,802"), ("186.40", Decimal("92.1"), "92.10"), ("four", Decimal(6), "six"),
    ("Four", Decimal(12), "Twelve"), ("12", Decimal(7), "7"),
])
def test_numbers_render_in_the_style_they_were_written(written, value, expected):
    (mention,) = find_numbers(written)
    assert render("number", value, mention.style) == expected


@pytest.mark.parametrize("written, value", [("four", Decimal(23)), ("186.40", Decimal("1.125")), ("7", Decimal("2.5"))])
def test_a_number_a_style_cannot_write_exactly_is_refused(written, value):
    (mention,) = find_numbers(written)
    assert render("number", value, mention.style) is None


@pytest.mark.parametrize("written, value, other, expected", [
    ("7pm", "19:00", "21:00", "9pm"), ("7:30 pm", "19:30", "08:15", "8:15 am"), ("9:30", "09:30", "17:05", "17:05"),
    ("09:30", "09:30", "08:00", "08:00"), ("6:30AM", "06:30", "18:45", "6:45PM"),
    ("7 p.m.", "19:00", "10:00", "10 a.m."),
])
def test_times_are_read_as_24_hour_values_and_written_back_alike(written, value, other, expected):
    (mention,) = find_times(f"at {written} please")
    assert mention.value == value
    assert render("time", other, mention.style) == expected


def test_a_time_style_without_minutes_cannot_say_half_past_and_noon_says_only_noon():
    (seven,) = find_times("7pm")
    assert render("time", "19:30", seven.style) is None
    (noon,) = find_times("at noon")
    assert noon.value == "12:00" and render("time", "13:00", noon.style) is None


@pytest.mark.parametrize("written, value, other, expected", [
    ("2025-07-08", "2025-07-08", "2026-01-31", "2026-01-31"),
    ("March 12, 2026", "2026-03-12", "2025-11-02", "November 2, 2025"),
    ("January 5th 2026", "2026-01-05", "2025-06-22", "June 22nd 2025"),
    ("14 Aug 2025", "2025-08-14", "2027-02-03", "3 Feb 2027"),
    ("the 2nd of October 2025", "2025-10-02", "2025-12-11", "the 11th of December 2025"),
])
def test_dates_with_a_year_in_several_spellings(written, value, other, expected):
    (mention,) = find_dates(f"on {written} at 9")
    assert mention.value == value
    assert render("date", other, mention.style) == expected


def test_a_date_without_a_year_is_found_but_has_no_value_and_keeps_its_numbers():
    assert found("Friday December 12 at 18:00") == [("date", "December 12", None), ("time", "18:00", "18:00")]
    assert found("reading on 1 June was 48213 kWh") == [("date", "1 June", None), ("number", "48213", Decimal(48213))]


def test_numbers_inside_dates_and_times_are_not_numbers_of_their_own():
    assert found("on 2025-07-08 at 9:30, 3 people") == [
        ("date", "2025-07-08", "2025-07-08"), ("time", "9:30", "09:30"), ("number", "3", Decimal(3))]
    assert find_dates("2025-02-30") == []  # not a real date
