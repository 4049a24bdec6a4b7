"""Value banks shipped with calltune: typed values for augmentation and everyday no-call requests.

Plain lists are `<name>.txt`, one value a line (`#` starts a comment line); structured banks are
JSON. Every bank is read once per process.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

BANK_DIR = Path(__file__).resolve().parent
# Text banks that can stand in for a parameter's values (calltune.data.augment picks one per parameter).
TEXT_BANKS = ("places", "landmarks", "people", "emails", "organisations", "products")


@functools.cache
def bank(name: str) -> tuple[str, ...]:
    """The values of `<name>.txt`, in file order."""
    return tuple(text for _, text in bank_lines(name))


@functools.cache
def bank_lines(name: str) -> tuple[tuple[int, str], ...]:
    """(line number, value) of every value line of `<name>.txt`."""
    lines = (BANK_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return tuple((i, line.strip()) for i, line in enumerate(lines, start=1)
                 if line.strip() and not line.lstrip().startswith("#"))


@functools.cache
def number_words() -> dict[str, int]:
    """{"zero": 0, ..., "twenty": 20, "thirty": 30, ...}: numbers people write as words."""
    return json.loads((BANK_DIR / "number_words.json").read_text(encoding="utf-8"))


@functools.cache
def currencies() -> tuple[dict, ...]:
    """[{"code": "USD", "plural": "US dollars", "singular": "US dollar", "short": "dollars"}, ...]:
    ISO 4217 codes and how people name them ("short" only where it is unambiguous)."""
    return tuple(json.loads((BANK_DIR / "currencies.json").read_text(encoding="utf-8")))
