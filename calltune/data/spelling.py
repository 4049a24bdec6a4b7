"""Typed values as people write them: numbers, clock times and dates, found in text and re-rendered.

Each `find_*` returns Mentions: where a value is written in a text, the value it means, and the
*style* it is written in ("2,340", "four", "7pm", "9:30", "March 12, 2026", ...). `render` writes
another value in the same style, so augmentation can swap "7pm" -> "9:30pm" in a query while the
call gets "21:30", or "four days" -> "six days" while the call gets 6. A style that cannot carry
another value ("noon") renders None: the caller then leaves that value alone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from calltune.data.banks import number_words

# ---- mentions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    kind: str  # "number" | "time" | "date"
    start: int
    end: int
    value: object  # Decimal (number), "HH:MM" (time), "YYYY-MM-DD" (date; None for "December 12")
    style: tuple  # how it is written; see render()

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def find_all(text: str) -> list[Mention]:
    """Every date, time and number mention in `text`; numbers inside a date or time are part of it."""
    found = find_dates(text) + find_times(text)
    taken = [m.span for m in found]
    found += [m for m in find_numbers(text) if not any(overlaps(m.span, s) for s in taken)]
    return sorted(found, key=lambda m: m.start)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def render(kind: str, value, style: tuple) -> str | None:
    """`value` written in `style` (a style from a Mention of the same kind); None if it can't be."""
    return {"number": render_number, "time": render_time, "date": render_date}[kind](value, style)


# ---- numbers: 2340, 2,340, 186.40, four -----------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|[.,]\d)")


def find_numbers(text: str) -> list[Mention]:
    words = number_words()
    found = []
    for m in _NUMBER.finditer(text):
        whole, fraction = m[1], m[2] or ""
        style = ("digits", "," in whole, len(fraction) - 1 if fraction else 0)
        found.append(Mention("number", m.start(), m.end(), Decimal(whole.replace(",", "") + fraction), style))
    for m in re.finditer(r"(?<![\w-])([A-Za-z]+)(?![\w-])", text):
        if m[1].lower() in words:
            found.append(Mention("number", m.start(), m.end(), Decimal(words[m[1].lower()]), ("word", _case(m[1]))))
    return sorted(found, key=lambda m: m.start)


def number_decimals(style: tuple) -> int | None:
    """Decimal places a style writes (None: any integer, as a word)."""
    return style[2] if style[0] == "digits" else 0


def render_number(value, style: tuple) -> str | None:
    value = Decimal(str(value))
    if style[0] == "word":
        if value != value.to_integral_value():
            return None
        word = {n: w for w, n in number_words().items()}.get(int(value))
        return None if word is None else _apply_case(word, style[1])
    _, commas, decimals = style
    quantum = Decimal(1).scaleb(-decimals)
    if value.quantize(quantum) != value or value < 0:
        return None  # would not write the value exactly
    return f"{value:,.{decimals}f}" if commas else f"{value:.{decimals}f}"


def _case(word: str) -> str:
    return "upper" if word.isupper() and len(word) > 1 else "title" if word[:1].isupper() else "lower"


def _apply_case(word: str, case: str) -> str:
    return word.upper() if case == "upper" else word.capitalize() if case == "title" else word.lower()


# ---- clock times: 19:30, 9:30, 7pm, 7:30 p.m., noon ------------------------------------------------

_TIME_12 = re.compile(r"(?<![\w:.])(\d{1,2})(?::([0-5]\d))?(\s?)(am|pm|a\.m\.|p\.m\.|AM|PM|A\.M\.|P\.M\.)(?![\w])")
_TIME_24 = re.compile(r"(?<![\w:.])(\d{1,2}):([0-5]\d)(?![\w:]|\s?(?:am|pm|a\.m\.|p\.m\.)\b)", re.IGNORECASE)
_TIME_WORDS = {"noon": "12:00", "midday": "12:00", "midnight": "00:00"}


def find_times(text: str) -> list[Mention]:
    found = []
    for m in _TIME_12.finditer(text):
        hour, minute = int(m[1]), int(m[2] or 0)
        if not 1 <= hour <= 12:
            continue
        hour = hour % 12 + (12 if m[4].lower().startswith("p") else 0)
        style = ("12h", m[2] is not None, m[3], m[4])
        found.append(Mention("time", m.start(), m.end(), f"{hour:02d}:{minute:02d}", style))
    for m in _TIME_24.finditer(text):
        if any(overlaps((m.start(), m.end()), f.span) for f in found) or int(m[1]) > 23:
            continue
        style = ("24h", len(m[1]) == 2)
        found.append(Mention("time", m.start(), m.end(), f"{int(m[1]):02d}:{m[2]}", style))
    for m in re.finditer(r"\b(noon|midday|midnight)\b", text, re.IGNORECASE):
        found.append(Mention("time", m.start(), m.end(), _TIME_WORDS[m[1].lower()], ("word",)))
    return sorted(found, key=lambda m: m.start)


def render_time(value: str, style: tuple) -> str | None:
    hour, minute = map(int, value.split(":"))
    if style[0] == "24h":
        return f"{hour:02d}:{minute:02d}" if style[1] else f"{hour}:{minute:02d}"
    if style[0] == "12h":
        _, with_minutes, space, suffix = style
        if minute and not with_minutes:
            return None  # "7pm" cannot say 19:30
        half = "p" if hour >= 12 else "a"
        marker = f"{half}.m." if "." in suffix else f"{half}m"
        marker = marker.upper() if suffix.isupper() else marker
        shown = f"{(hour - 1) % 12 + 1}" + (f":{minute:02d}" if with_minutes else "")
        return f"{shown}{space}{marker}"
    return None  # noon / midnight say one time only


# ---- dates with a year: 2025-07-08, March 12, 2026, 14 Aug 2025, the 2nd of October 2025 -------------

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH = r"(?P<month>" + "|".join(_MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DAY = r"(?P<day>\d{1,2})(?P<suffix>st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_DATE_PATTERNS = [  # (style name, regex)
    ("iso", re.compile(r"(?<![\w-])(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?![\w-]|T?\d)")),
    ("mdy", re.compile(rf"\b{_MONTH}\s+{_DAY}(?P<comma>,?)\s+{_YEAR}\b", re.IGNORECASE)),
    ("dmy", re.compile(rf"\b(?P<the>the\s+)?{_DAY}(?P<of>\s+of)?\s+{_MONTH}(?P<comma>,?)\s+{_YEAR}\b",
                       re.IGNORECASE)),
]
# A day and month without a year ("December 12", "1 June"): a date whose value the text alone
# does not give; found so that its numbers are not taken for amounts.
_ANY_MONTH = _MONTH.replace("?P<month>", "?:")
_PARTIAL_DATE = re.compile(rf"\b(?:{_ANY_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?"
                           rf"|\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+{_ANY_MONTH})(?!\w)", re.IGNORECASE)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RELATIVE_DAYS = re.compile(r"\b(today|tonight|tomorrow|yesterday|weekend|next week|this week|"
                           + "|".join(WEEKDAYS) + r")\b", re.IGNORECASE)


def find_dates(text: str) -> list[Mention]:
    found = []
    for name, pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(overlaps((m.start(), m.end()), f.span) for f in found):
                continue
            date = _date_of(name, m)
            if date is None:
                continue
            found.append(Mention("date", m.start(), m.end(), date.isoformat(), _date_style(name, m)))
    for m in _PARTIAL_DATE.finditer(text):
        if not any(overlaps((m.start(), m.end()), f.span) for f in found):
            found.append(Mention("date", m.start(), m.end(), None, ("partial",)))
    return sorted(found, key=lambda m: m.start)


def _date_of(name: str, m: re.Match) -> dt.date | None:
    month = int(m["month"]) if name == "iso" else _month_number(m["month"])
    try:
        return dt.date(int(m["year"]), month, int(m["day"]))
    except ValueError:
        return None


def _month_number(text: str) -> int:
    text = text.lower().rstrip(".")
    return next(i for i, month in enumerate(_MONTHS, start=1) if month.startswith(text[:3]))


def _date_style(name: str, m: re.Match) -> tuple:
    if name == "iso":
        return ("iso",)
    month = m["month"]
    form = "full" if month.lower().rstrip(".") in _MONTHS else "abbr"
    return (name, form, _case(month), month.endswith("."), bool(m["suffix"]), m["comma"],
            m.groupdict().get("the") or "", m.groupdict().get("of") or "")


def render_date(value: str, style: tuple) -> str | None:
    if style[0] == "partial":
        return None
    if style[0] == "iso":
        return value
    date = dt.date.fromisoformat(value)
    name, form, case, dot, suffix, comma, the, of = style
    month = _MONTHS[date.month - 1]
    if form == "abbr":
        month = month[:3]
    month = _apply_case(month, case) + ("." if dot and form == "abbr" else "")
    day = f"{date.day}{_ordinal(date.day) if suffix else ''}"
    if name == "mdy":
        return f"{month} {day}{comma} {date.year}"
    return f"{the}{day}{of} {month}{comma} {date.year}"


def _ordinal(day: int) -> str:
    return "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
