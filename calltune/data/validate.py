"""Schema checks that name the file, line and field of every problem, collected in one pass."""

from __future__ import annotations

import re

from referencing.exceptions import Unresolvable

from calltune.errors import InputError, InputErrors
from calltune.params import schema_errors


_INDEX = re.compile(r"(?:^|\.)(\d+)(?=\.|$)")


def join_field(prefix: str, field: str | None) -> str | None:
    if not field:
        return prefix or None
    if not prefix:
        return field
    return f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"


def instance_errors(instance, schema: dict, path, line=None, prefix: str = "") -> list[InputError]:
    """Every violation of `schema` by `instance`, located at path:line and under field `prefix`."""
    try:
        errors = schema_errors(instance, schema, path)
    except Unresolvable as e:
        return [InputError(f"schema has an unresolvable $ref: {e}", path=path, line=line, field=prefix or None)]
    return [InputError(e.reason, path=path, line=line, field=join_field(prefix, _indexed(e.field))) for e in errors]


def _indexed(field: str | None) -> str | None:
    """jsonschema's dotted path with list positions written as indexes: calls.0.name -> calls[0].name."""
    return _INDEX.sub(r"[\1]", field) if field else field


def raise_if_any(errors: list[InputError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InputErrors(errors)


def collect(errors: list[InputError], fn, *args, **kwargs):
    """Run fn; add its InputError(s) to `errors` and return None instead of raising."""
    try:
        return fn(*args, **kwargs)
    except InputErrors as e:
        errors.extend(e.errors)
    except InputError as e:
        errors.append(e)
    return None
