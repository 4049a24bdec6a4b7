"""The built-in no-call bank: everyday requests mixed in so the model learns when *not* to call.

calltune/data/banks/no_call.txt holds ~350 requests in sections (chit-chat, general knowledge,
creative writing, advice, recipes, device control, errands, personal data, ...). A request that one
of the user's tools might serve must not be taught as "no call", so two word-overlap filters drop
requests before any is drawn:

1. a section is dropped whole when the tools' vocabulary contains one of its trigger words
   (a web-search tool answers general-knowledge questions: "knowledge: search, web, ...");
2. a request is dropped when any of its content words matches a word of the tools' vocabulary.

The vocabulary is every word of the tools' names, descriptions, parameter names, parameter
descriptions and enum values, less stop words and words too generic to mean a domain ("get",
"number", ...). Words match when equal or when one is a prefix of the other and the shorter has at
least 4 letters ("remind" ~ "reminders"). Both filters err on the side of dropping: a good negative
lost costs little, a request the tools can serve taught as "no call" costs accuracy.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass

from calltune.data.banks import BANK_DIR

BANK_FILE = BANK_DIR / "no_call.txt"
MIN_PREFIX = 4  # shortest word that may match a longer one by prefix

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each else ever every few for from further
had has have having he her here hers him his how i if in into is it its itself just let lets me more most
my no nor not now of off on once only or other our out over own per please same she should so some such
than that the their them then there these they this those through to too under until up upon us very
was we were what when where which while who whom why will with would you your yours s t e g eg ie etc
yes ok okay
""".split())
# Words that say little about what a tool does: they would drop half the bank on their own.
GENERIC_WORDS = frozenset("""
get set make create add new use used using user users number numbers name names list lists value values
type types default optional optionally leave left given give gives return returns show shows current
currently one two first last only like e.g string integer boolean object array id ids format formats
true false null item items field fields parameter parameters required option options info data via
whether want wants need needs include includes including exactly least most many much kind line lines
today tomorrow tonight yesterday day days week weeks month months year years time times hour hours minute
minutes start end
""".split())


@dataclass(frozen=True)
class Request:
    line: int
    text: str
    section: str


@dataclass
class BankDraw:
    requests: list[Request]  # drawn, in bank order
    available: int  # requests left after filtering (and after removing the user's own queries)
    dropped: int  # requests filtered out as plausibly served by a tool
    dropped_sections: list[str]  # sections dropped whole


@functools.cache
def bank_requests() -> tuple[tuple[Request, ...], dict[str, frozenset]]:
    """Every request of the bank, and each section's trigger words."""
    requests, triggers, section = [], {}, ""
    for number, raw in enumerate(BANK_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("##"):
            section, _, words = line[2:].partition(":")
            section = section.strip()
            triggers[section] = frozenset(w.strip().lower() for w in words.split(",") if w.strip())
        elif line and not line.startswith("#"):
            requests.append(Request(number, line, section))
    return tuple(requests), triggers


def words_of(text: str) -> list[str]:
    """Lower-case words, splitting snake_case and camelCase; apostrophes end a word ("user's" -> user)."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return re.findall(r"[a-z0-9]+", text.casefold().replace("_", " "))


def content_words(text: str) -> set[str]:
    return {w for w in words_of(text) if w not in STOP_WORDS and w not in GENERIC_WORDS and len(w) > 2
            and not w.isdigit()}


def tool_vocabulary(tools: list[dict]) -> set[str]:
    """Content words of everything the tools say about themselves (see the module docstring)."""
    texts = []
    for tool in tools:
        function = tool.get("function", tool)
        texts += [function["name"], function.get("description", "")]
        texts += _schema_texts(function.get("parameters") or {})
    return set().union(*(content_words(t) for t in texts)) if texts else set()


def _schema_texts(schema: dict) -> list[str]:
    texts = [schema.get("description", "")] + [str(v) for v in schema.get("enum", []) if isinstance(v, str)]
    for name, sub in (schema.get("properties") or {}).items():
        texts.append(name)
        texts += _schema_texts(sub if isinstance(sub, dict) else {})
    if isinstance(schema.get("items"), dict):
        texts += _schema_texts(schema["items"])
    return texts


def word_matches(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) >= MIN_PREFIX and long.startswith(short)


def shared_words(text: str, vocabulary: set[str]) -> set[str]:
    """Content words of `text` that match a vocabulary word."""
    return {w for w in content_words(text) if any(word_matches(w, v) for v in vocabulary)}


def draw_no_calls(tools: list[dict], count: int, seed: int, exclude: set[str] = frozenset(),
                  key=lambda text: text) -> BankDraw:
    """Up to `count` bank requests that no tool plausibly serves, drawn with a seeded generator.
    `exclude` holds keys (`key(text)`) of queries the dataset already has."""
    requests, triggers = bank_requests()
    vocabulary = tool_vocabulary(tools)
    dropped_sections = sorted(s for s, words in triggers.items() if any(w in vocabulary for w in words))
    usable, dropped = [], 0
    for request in requests:
        if request.section in dropped_sections or shared_words(request.text, vocabulary):
            dropped += 1
        elif key(request.text) not in exclude:
            usable.append(request)
    rng = random.Random(f"calltune-nocall:{seed}")
    chosen = sorted(rng.sample(range(len(usable)), min(count, len(usable))))
    return BankDraw([usable[i] for i in chosen], len(usable), dropped, dropped_sections)


def needed(n_rows: int, n_no_call: int, share: float) -> int:
    """Bank rows to add so that no-call rows make `share` of the dataset (0 when already there)."""
    if share <= 0 or share >= 1:
        return 0
    return max(0, math.ceil((share * n_rows - n_no_call) / (1 - share) - 1e-9))
