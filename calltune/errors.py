"""One error type for bad user input: it says which file, line, field and why."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input. Stage CLIs print it and exit non-zero without writing outputs."""

    def __init__(self, reason: str, *, path=None, line: int | None = None, field: str | None = None):
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.reason}" if where else self.reason


class InputErrors(InputError):
    """Several input errors found in one pass, reported together."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        lines = [e.describe() for e in errors[:50]]
        if len(errors) > 50:
            lines.append(f"... and {len(errors) - 50} more")
        super().__init__(f"{len(errors)} error(s):\n  " + "\n  ".join(lines))

    def describe(self) -> str:
        return self.reason
