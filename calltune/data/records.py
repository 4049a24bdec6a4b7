"""Read a file of JSON records (a JSON array or JSON Lines), keeping each record's line number."""

from __future__ import annotations

import json
import re
from pathlib import Path

from calltune.errors import InputError, InputErrors
from calltune.io import read_text

_BETWEEN_ITEMS = re.compile(r"[\s,]*")


def read_records(path, array_only: bool = False) -> list[tuple[int, object]]:
    """(line, record) for every record; every malformed line is reported, not just the first."""
    path = Path(path)
    text = read_input(path)
    if text.lstrip().startswith("["):
        return _array_records(text, path)
    if array_only:
        raise InputError("expected a JSON list: [ {...}, ... ]", path=path, line=1)
    return _jsonl_records(text, path)


def read_input(path) -> str:
    """The text of a user input file, or an InputError naming it (missing, or the line of a byte that is not UTF-8)."""
    return read_text(path)


def _jsonl_records(text: str, path: Path) -> list[tuple[int, object]]:
    records, errors = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            errors.append(InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=lineno))
    if errors:
        raise InputErrors(errors)
    return records


def _array_records(text: str, path: Path) -> list[tuple[int, object]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None
    # json.loads keeps no positions: walk the valid text again to find where each item starts.
    decoder, pos, located = json.JSONDecoder(), text.index("[") + 1, []
    for item in items:
        pos = _BETWEEN_ITEMS.match(text, pos).end()
        located.append((text.count("\n", 0, pos) + 1, item))
        pos = decoder.raw_decode(text, pos)[1]
    return located
