"""File helpers: atomic writes (temp path, then rename), UTF-8 reading that names the bad line, and
line-numbered JSONL reading."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from calltune.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path` (file or directory).

    Nothing is left at `path` if the body raises, so a failed stage never leaves half-written
    outputs for DVC to cache.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def decode_utf8(data: bytes, path) -> str:
    """`data` as text; bytes that are not UTF-8 are an InputError naming the file and the line they sit on."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1  # the line holding the first bad byte
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at column {column} ({e.reason}); "
                         "save the file as UTF-8", path=path, line=line) from None


def read_text(path) -> str:
    """The UTF-8 text of a user file, or an InputError naming it (missing, or the line with bad bytes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    return decode_utf8(path.read_bytes(), path)


def read_json(path):
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None


def read_jsonl(path) -> Iterator[tuple[int, object]]:
    """Yield (line_number, object) for each non-blank line; malformed JSON names its line."""
    path = Path(path)
    # io.StringIO splits lines as a text-mode file does (\n, \r\n, \r), not at U+2028 inside a string.
    for lineno, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=lineno) from None


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def parse_yaml(text: str, path, *, with_nodes: bool = False):
    """Parse YAML safely; a syntax error names the file and line. `with_nodes` also returns the
    composed node tree (for reporting the line an entry starts on)."""
    try:
        data = yaml.safe_load(text)
        return (data, yaml.compose(text, Loader=yaml.SafeLoader)) if with_nodes else data
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', e)}", path=path,
                         line=mark.line + 1 if mark else None) from None
