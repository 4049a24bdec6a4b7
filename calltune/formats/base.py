"""What every chat format offers: render, split into prompt and target, parse model output."""

from __future__ import annotations

from dataclasses import dataclass, field

from calltune.formats.messages import expected_calls, last_user_index


@dataclass(frozen=True)
class ParseResult:
    """Calls found in generated text, the text around them, and why parsing stopped if it failed.

    On error, `calls` holds the calls that parsed completely before the fault.
    """

    calls: list[dict] = field(default_factory=list)
    content: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ChatFormat:
    """Base of the formats; subclasses define render, segments, parse, stop_strings, chat_template."""

    name: str = ""

    def render(self, messages: list[dict], tools: list[dict] | None = None,
               add_generation_prompt: bool = False) -> str:
        raise NotImplementedError

    def segments(self, messages: list[dict], tools: list[dict] | None = None) -> list[tuple[str, bool]]:
        """The render split into (text, supervised) runs; supervised = the final exchange's output."""
        raise NotImplementedError

    def parse(self, text: str) -> ParseResult:
        raise NotImplementedError

    @property
    def stop_strings(self) -> list[str]:
        raise NotImplementedError

    @property
    def chat_template(self) -> str:
        raise NotImplementedError

    def prompt(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """Evaluation prompt: the conversation up to its last user message, then the generation prompt."""
        return self.render(messages[: last_user_index(messages) + 1], tools, add_generation_prompt=True)

    def expected(self, messages: list[dict]) -> list[dict]:
        return expected_calls(messages)


def merge_runs(pieces) -> list[tuple[str, bool]]:
    """Join neighbouring pieces with the same flag and drop empty ones."""
    runs: list[tuple[str, bool]] = []
    for text, supervised in pieces:
        if not text:
            continue
        if runs and runs[-1][1] == supervised:
            runs[-1] = (runs[-1][0] + text, supervised)
        else:
            runs.append((text, supervised))
    return runs
