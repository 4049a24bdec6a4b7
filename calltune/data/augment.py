"""Augmentation from examples: the argument values written in a query become slots, refilled.

For one example (query + calls):

1. Every argument value is looked for in the query (case-insensitively, whole words): a string
   as written ("Lisbon", "Pay rent" as "pay rent", "flat_tyre" as "flat tyre"), a currency code
   or its name ("EUR" or "euros"), a number in its common spellings ("2340", "2,340", "four"),
   a time ("19:00" as "7pm" or "19:00") and a date ("2025-07-08" as "March 12, 2026" or
   "2025-07-08"), also inside a string argument ("186.40 / 4", "2025-07-01T08:00"). Each value
   found is a slot; a value not in the query stays as it is.
2. Slots that could make an inconsistent row are left alone: a typed value in the query that no
   argument explains (so "17%" -> 0.17 or "from 10:00 to 11:30" -> 90 minutes keep all numbers,
   or all times, of that example fixed), two slots whose mentions overlap, a value also found
   in another argument, the system text or an accepted alternative (a body "Hi Anna" next to
   "anna@example.com"), an argument that has accepted alternatives, a date next to a weekday or
   "tomorrow", a style that cannot carry another value ("noon").
3. Each new row refills every slot with another value: one from other examples of the same tool
   parameter, or from the schema's enum, or from a typed bank (calltune/data/banks: places,
   landmarks, people, emails, organisations, products, currencies, clock times; random dates and
   numbers of the same shape), written in the query in the style the example used ("7pm" ->
   "9:30pm") and in the arguments in theirs ("21:30"). The rest of the query and every other
   argument stay. Free text (no bank, no enum) takes only values other examples wrote after the
   same word ("remind me to <task>"); an enum value only values some query states after the same
   word, or, one word for one word, anywhere ("in Celsius" -> "in Fahrenheit").

With `drop_optional`, the example and each of its refills also give a row without an optional enum
value that the query writes before the word it describes ("any electric bikes" -> "any bikes",
no `bike_type`): the same request with and without the value (without_optional).

Rows are validated like hand-written ones (an invalid draw is dropped and counted), duplicates
are dropped, and everything is seeded by base.seed and the example's place in its file.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from calltune.data import spelling
from calltune.data.banks import TEXT_BANKS, bank, currencies
from calltune.data.examples import Example, example_errors
from calltune.data.nocall import STOP_WORDS
from calltune.data.templates import strings_in
from calltune.data.text import normalise_text

ATTEMPTS = 4  # draws tried per wanted row (duplicates and invalid draws use some up)
DATE_RANGE = (dt.date(2025, 1, 1), dt.date(2027, 12, 31))  # random dates are drawn from here
OBSERVED_SHARE = 0.5  # chance a new value comes from other examples when a bank could give one too
# Enum values that do not read as a word in a sentence ("results from any date"): never refilled.
ENUM_FILLERS = frozenset({"any", "none", "all", "auto", "default", "other", "unknown", "n/a", "null"})
EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
# Parameter-name words that say which bank holds values like this parameter's (when the values
# seen do not already say it; see _bank_for). Ambiguous names ("location", "to") are left out.
BANK_WORDS = {
    "places": {"city", "cities", "town", "country", "region"},
    "landmarks": {"near", "station", "stop", "street", "address", "landmark", "origin", "destination", "pickup",
                  "dropoff", "venue"},
    "people": {"person", "people", "contact", "contacts", "attendee", "attendees", "recipient", "recipients",
               "guest", "guests", "invitee", "invitees", "friend", "customer", "author", "who"},
    "emails": set(),  # an address is known by its shape
    "organisations": {"company", "organisation", "organization", "business", "employer", "shop", "store",
                      "restaurant", "brand", "merchant", "vendor"},
    "products": {"product", "products", "item", "items", "gift"},
}


# ---- where a value sits ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ArgumentRef:
    """One place of a value in the calls: calls[call].arguments[key][index], whole or a span of it."""
    call: int
    key: str
    index: int | None = None  # position in a list argument
    span: tuple[int, int] | None = None  # part of a string argument
    style: tuple = ()  # how the part is written (spelling styles), () for a whole value


@dataclass
class Slot:
    kind: str  # text | currency | number | time | date
    value: object  # str (text, currency code, HH:MM, YYYY-MM-DD) or Decimal (number)
    tool: str
    param: str
    schema: dict  # the parameter's (or list item's) schema
    refs: list[ArgumentRef] = field(default_factory=list)
    mentions: list[tuple[int, int, tuple]] = field(default_factory=list)  # (start, end, style) in the query
    before: str = ""  # the word before its first mention (text slots; see observed_values)


@dataclass
class Augmented:
    rows: list[tuple[int, Example]]  # (index of the source example, new example)
    stats: dict


# ---- driver ----------------------------------------------------------------------------------------

def augment(sources: list[Example], pool: list[Example], spec: dict, seed: int, tool_counts: Counter,
            taken: set[str]) -> Augmented:
    """New rows from `sources` (the hand-written examples), refilled from values seen in `pool`
    (every example of the dataset) and the banks. `spec` is generate.augment; `tool_counts` the
    rows calling each tool so far (for target_per_tool); `taken` the normalised queries already in
    the dataset (grown with every row added)."""
    stats = Counter()
    if not spec["enabled"]:
        return Augmented([], {})
    observed = observed_values(pool)
    slotted = [(i, example, find_slots(example)) for i, example in enumerate(sources)]
    slotted = [(i, example, slots) for i, example, slots in slotted if slots]
    wants = _wants([(example, slots) for _, example, slots in slotted], spec, tool_counts)
    rows = []

    def admit(i: int, new: Example) -> bool:
        """Keep `new` (made from source i) unless its query is taken or it fails validation."""
        key = normalise_text(new.query)
        if key in taken or example_errors(new):
            stats["dropped_duplicate" if key in taken else "dropped_invalid"] += 1
            return False
        taken.add(key)
        rows.append((i, new))
        return True

    for (i, example, slots), want in zip(slotted, wants):
        rng = random.Random(f"calltune-augment:{seed}:{example.source}:{example.where}")
        made, family = 0, [(example, slots)]
        for _ in range(want * ATTEMPTS):
            if made == want:
                break
            new = refill(example, slots, observed, rng)
            if new is None:
                stats["dropped_unfillable"] += 1
            elif admit(i, new):
                family.append((new, None))
                made += 1
        stats["sources"] += made > 0
        for member, member_slots in family if spec.get("drop_optional") else []:
            # the example and each of its refills once more without a stated optional value
            for new in without_optional(member, member_slots or find_slots(member)):
                if admit(i, new):
                    stats["without_optional"] += 1
    for _, _, slots in slotted:
        for slot in slots:
            stats[f"slots_{slot.kind}"] += 1
    return Augmented(rows, {"examples_with_slots": len(slotted), **dict(sorted(stats.items()))})


def _wants(slotted: list[tuple[Example, list[Slot]]], spec: dict, tool_counts: Counter) -> list[int]:
    """Rows to make from each example: per_example, or with target_per_tool > 0 only as many as
    bring each tool it calls up to the target (shared among that tool's slotted examples)."""
    per_example, target = spec["per_example"], spec["target_per_tool"]
    if target <= 0:
        return [per_example] * len(slotted)
    makers = Counter(name for example, _ in slotted for name in {c["name"] for c in example.calls})
    share = {name: math.ceil(max(0, target - tool_counts[name]) / n) for name, n in makers.items()}
    return [min(per_example, max(share[c["name"]] for c in example.calls)) for example, _ in slotted]


# ---- rows without an optional value --------------------------------------------------------------

# Words after which a value is the object of a phrase ("in Celsius", "for the week"): dropping the
# value alone would leave the phrase dangling, so such a value stays.
PREPOSITIONS = frozenset({"in", "at", "on", "to", "from", "for", "by", "with", "of", "near", "around", "via",
                          "into", "as", "about", "per", "than", "between", "like", "until", "till", "after",
                          "before", "over", "under", "within", "without"})
# Words after a value that say it is not describing a thing ("Fahrenheit please", "past week only").
NOT_DESCRIBED = frozenset({"please", "pls", "only", "too", "also", "instead", "then", "now", "thanks", "thank",
                           "and", "or", "but", "is", "are", "was", "one", "ones"})


def without_optional(example: Example, slots: list[Slot]) -> list[Example]:
    """One new row per optional enum argument whose value the query writes as a word describing the
    next one ("any electric bikes", "the quietest route"): the value leaves the query and the call,
    so the model sees the same request with and without it and learns to write an optional
    argument only when it is asked for. A value after a preposition ("in Celsius"), at the end of
    the query, before a word that is not what it describes ("please", "only", the parameter's own
    name: "low priority"), written twice, in a list or inside a longer string, or of a required
    argument stays."""
    rows = []
    for slot in slots:
        if slot.kind != "text" or not slot.schema.get("enum") or len(slot.mentions) != 1 or len(slot.refs) != 1:
            continue
        ref = slot.refs[0]
        call = example.calls[ref.call]
        if ref.index is not None or ref.span is not None or \
                ref.key in _parameters(example.tools, call["name"]).get("required", []):
            continue
        start, end, _ = slot.mentions[0]
        query = example.query
        after = re.match(r" +([A-Za-z][\w'-]*)", query[end:])
        if after is None or _word_before(query, start) in PREPOSITIONS:
            continue
        following = after[1]
        if following.casefold() in NOT_DESCRIBED | {ref.key.casefold(), ref.key.casefold().split("_")[-1]}:
            continue  # "low priority email" keeps "low": without it, "a priority email" says another thing
        if not query[:start].strip() and query[start:start + 1].isupper():
            following = following[:1].upper() + following[1:]  # "Electric bikes near ..." -> "Bikes near ..."
        before = _with_article(query[:start], query[start:end], following)
        new_query = before + following + query[end + after.end():]
        calls = copy.deepcopy(example.calls)
        del calls[ref.call]["arguments"][ref.key]
        rows.append(_variant(example, new_query, calls))
    return rows


# ---- slot detection --------------------------------------------------------------------------------

def find_slots(example: Example) -> list[Slot]:
    """The values of `example`'s calls that its query states and that can be refilled consistently
    (see the module docstring); [] for examples with history or tool results."""
    if not example.calls or example.history or example.tool_results is not None:
        return []
    query = example.query
    atoms = [atom for call_index, call in enumerate(example.calls)
             for atom in _atoms(call_index, call, example.tools, query)]
    slots: dict[tuple, Slot] = {}
    for atom in atoms:
        slot = slots.setdefault((atom.kind, atom.value), atom)
        if slot is not atom:
            slot.refs += atom.refs
    found = [s for s in slots.values() if s.mentions]
    explained = [(start, end) for s in found for start, end, _ in s.mentions]
    # A kind is left alone when the query has a value of it that no argument explains, or the
    # calls have one the query does not state (derived from it: "an hour before", "tomorrow").
    unexplained = {m.kind for m in spelling.find_all(query)
                   if not any(spelling.overlaps(m.span, span) for span in explained)}
    unexplained |= {s.kind for s in slots.values() if not s.mentions and s.kind in ("time", "date")}
    unexplained |= {s.kind for s in slots.values()
                    if not s.mentions and s.kind == "number" and any(r.span is None for r in s.refs)}
    keep = []
    for slot in found:
        if slot.kind in unexplained or not all(style is not None for *_, style in slot.mentions):
            continue
        if any(spelling.overlaps(a[:2], b[:2]) for other in found if other is not slot
               for a in slot.mentions for b in other.mentions):
            continue
        if slot.kind == "date" and spelling.RELATIVE_DAYS.search(query):
            continue
        if slot.kind == "text" and str(slot.value).casefold() in ENUM_FILLERS:
            continue
        if any(r.key in (example.accept or [{}] * len(example.calls))[r.call] for r in slot.refs):
            continue  # its accepted alternatives are written for this value
        if _linked(slot, example):
            continue
        if slot.kind == "text":
            slot.before = _word_before(query, slot.mentions[0][0])
        keep.append(slot)
    return keep


def _atoms(call_index: int, call: dict, tools: list[dict], query: str) -> list[Slot]:
    """A Slot (with the refs and query mentions of one occurrence) for every value of one call."""
    schema = _parameters(tools, call["name"])
    atoms = []
    for key, value in call["arguments"].items():
        param = schema.get("properties", {}).get(key, {})
        if isinstance(value, list):
            item_schema = param.get("items", {}) if isinstance(param.get("items"), dict) else {}
            for index, item in enumerate(value):
                atoms += _value_atoms(ArgumentRef(call_index, key, index), item, call["name"], key, item_schema, query)
        else:
            atoms += _value_atoms(ArgumentRef(call_index, key), value, call["name"], key, param, query)
    return atoms


def _value_atoms(ref: ArgumentRef, value, tool: str, key: str, schema: dict, query: str) -> list[Slot]:
    def atom(kind, atom_value, atom_ref, mentions):
        return Slot(kind, atom_value, tool, key, schema, [atom_ref], mentions)

    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        number = Decimal(str(value))
        return [atom("number", number, ref, _number_mentions(query, number))]
    if not isinstance(value, str) or not value.strip():
        return []
    whole = _typed_whole(value)
    if whole is not None:
        return [atom(kind, part, ArgumentRef(ref.call, ref.key, ref.index, span, style),
                     _typed_mentions(query, kind, part))
                for kind, part, span, style in whole]
    if _currency(value) is not None:
        return [atom("currency", value, ref, _currency_mentions(query, value))]
    mentions = _text_mentions(query, value) if len(value.strip()) > 1 and value.casefold() not in STOP_WORDS else []
    if mentions:  # ("a", "I" or "the" as a value would match words that are not it)
        return [atom("text", value, ref, mentions)]
    parts = []  # numbers, dates and times inside a longer string ("186.40 / 4")
    for m in spelling.find_all(value):
        if (m.kind == "number" and m.style[0] != "digits") or m.value is None:
            continue
        mentions = _number_mentions(query, m.value) if m.kind == "number" else _typed_mentions(query, m.kind, m.value)
        parts.append(atom(m.kind, m.value, ArgumentRef(ref.call, ref.key, ref.index, m.span, m.style), mentions))
    return parts


def stated(value, text: str) -> bool:
    """Whether `text` writes `value` the way slot detection finds values (whole words in any case;
    numbers, dates and times in their common spellings): for a list or an object, any item of it.
    A boolean or null is never written, so never stated."""
    if isinstance(value, list):
        return any(stated(item, text) for item in value)
    if isinstance(value, dict):
        return any(stated(item, text) for item in value.values())
    ref = ArgumentRef(0, "")
    return any(slot.mentions for slot in _value_atoms(ref, value, "", "", {}, text))


def _typed_whole(value: str):
    """[(kind, value, span, style)] for a string that is exactly a date, a time or a date-time."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and _is_date(value):
        return [("date", value, None, ("iso",))]
    if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return [("time", value, None, ("24h", True))]
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(([01]\d|2[0-3]):[0-5]\d)", value)
    if m and _is_date(m[1]):
        return [("date", m[1], (0, 10), ("iso",)), ("time", m[2], (11, 16), ("24h", True))]
    return None


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _number_mentions(query: str, number: Decimal):
    # a spelling that does not read back ("007") is kept with style None: explained, not refillable
    return [(m.start, m.end, m.style if spelling.render("number", number, m.style) == query[m.start:m.end] else None)
            for m in spelling.find_numbers(query) if m.value == number and not _inside_date_or_time(query, m)]


def _inside_date_or_time(query: str, mention) -> bool:
    return any(spelling.overlaps(mention.span, m.span) for m in spelling.find_dates(query) + spelling.find_times(query))


def _typed_mentions(query: str, kind: str, value: str):
    found = spelling.find_dates(query) if kind == "date" else spelling.find_times(query)
    # a style that cannot write another value ("noon") is kept as None: the value is explained, not refillable
    return [(m.start, m.end, m.style if spelling.render(kind, value, m.style) == query[m.start:m.end] else None)
            for m in found if value is not None and m.value == value]


def _text_mentions(query: str, value: str):
    """Where `value` is written in `query` (whole words, any case), with how its case differs."""
    mentions = []
    for written, spaced in ((value, False), (value.replace("_", " "), True)):
        if spaced and "_" not in value:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, written.split())) + r"(?!\w)"
        for m in re.finditer(pattern, query, re.IGNORECASE):
            mentions.append((m.start(), m.end(), _case_style(m[0], " ".join(written.split()), query)))
    return mentions


def _case_style(seen: str, value: str, query: str):
    seen = " ".join(seen.split())
    styles = [("same", value), ("first-lower", value[:1].lower() + value[1:]),
              ("first-upper", value[:1].upper() + value[1:]), ("lower", value.lower()), ("upper", value.upper())]
    if query == query.lower():  # an all-lower-case query lower-cases every value
        styles.insert(0, ("lower", value.lower()))
    for name, form in styles:
        if seen == form:
            return ("text", name, "_" in seen)
    return None


def _currency(code: str) -> dict | None:
    return next((c for c in currencies() if c["code"] == code), None)


def _currency_mentions(query: str, code: str):
    entry = _currency(code)
    for form in ("code", "plural", "singular", "short"):
        text = entry.get(form)
        if text is None:
            continue
        pattern = r"(?<!\w)" + re.escape(text) + r"(?!\w)"
        mentions = [(m.start(), m.end(), ("currency", form, "same") if m[0] == text else
                     ("currency", form, "lower") if m[0] == text.lower() else None)
                    for m in re.finditer(pattern, query, re.IGNORECASE)]
        if mentions:
            return mentions
    return []


def _linked(slot: Slot, example: Example) -> bool:
    """True when the slot's value also shows elsewhere (another argument, the system text, an
    accepted alternative): refilling only the slot would leave the row saying two things."""
    needles = _needles(slot)
    refs = {(r.call, r.key, r.index) for r in slot.refs}
    haystack = [example.system or "", example.answer or ""]
    for call_index, call in enumerate(example.calls):
        for key, value in call["arguments"].items():
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                where = (call_index, key, index if isinstance(value, list) else None)
                if where in refs:
                    haystack.append(_outside_refs(item, [r for r in slot.refs if (r.call, r.key, r.index) == where]))
                else:
                    haystack += list(strings_in(item))
    for call_accept in getattr(example, "accept", None) or []:
        for values in call_accept.values():
            haystack += [v for v in values if isinstance(v, str)]
    if slot.kind == "number":
        numbers = [m.value for text in haystack for m in spelling.find_all(text)
                   if m.kind == "number" and m.style[0] == "digits"]
        return slot.value in numbers
    text = "\n".join(haystack)
    return any(re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", text, re.IGNORECASE) for n in needles)


def _outside_refs(item, refs: list[ArgumentRef]) -> str:
    """The parts of a string argument that these refs do not cover (none of a whole value)."""
    if not isinstance(item, str) or any(r.span is None for r in refs):
        return ""
    text = item
    for r in sorted(refs, key=lambda r: -r.span[0]):
        text = text[:r.span[0]] + " " + text[r.span[1]:]
    return text


def _needles(slot: Slot) -> list[str]:
    if slot.kind != "text":
        return [str(slot.value)] + ([_currency(slot.value)["plural"]] if slot.kind == "currency" else [])
    value = str(slot.value)
    words = [w for w in re.split(r"[^\w']+", value.split("@")[0] if EMAIL.match(value) else value)
             if len(w) >= 3 and w.casefold() not in STOP_WORDS]
    return [value] + words if " " in value or EMAIL.match(value) else [value]


# ---- value pools -----------------------------------------------------------------------------------

def observed_values(examples: list[Example]) -> dict[tuple, dict]:
    """{(tool, param, kind): {value: words written just before it in the queries that state it}}
    for every value seen in any example, in first-seen order (an empty set: never stated)."""
    seen: dict[tuple, dict] = defaultdict(dict)
    for example in examples:
        for call in example.calls:
            for key, value in call["arguments"].items():
                for item in value if isinstance(value, list) else [value]:
                    kind = _kind_of(item)
                    if kind == "datetime":
                        seen[(call["name"], key, "date")].setdefault(item[:10], set())
                        seen[(call["name"], key, "time")].setdefault(item[11:], set())
                    elif kind is not None:
                        before = seen[(call["name"], key, kind)].setdefault(item, set())
                        if kind == "text":
                            before |= {_word_before(example.query, start)
                                       for start, *_ in _text_mentions(example.query, item)}
    return dict(seen)


def _word_before(query: str, start: int) -> str:
    """The word just before query[start:] ("^" at the start of the query)."""
    words = re.findall(r"[\w']+", query[:start])
    return words[-1].casefold() if words else "^"


def _kind_of(value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return "number"
    if not isinstance(value, str):
        return None
    whole = _typed_whole(value)
    if whole is not None:
        return whole[0][0] if len(whole) == 1 else "datetime"
    return "currency" if _currency(value) else "text"


def _bank_for(slot: Slot, observed: dict) -> tuple[str, ...]:
    """The typed bank a text slot may draw from: emails for an address, else the bank at least
    half of the parameter's seen values belong to, else the one its name points at (BANK_WORDS);
    () for free text."""
    value = str(slot.value)
    if EMAIL.match(value):
        return bank("emails")
    folded = {v.casefold() for v in observed.get((slot.tool, slot.param, "text"), {}) if not EMAIL.match(v)}
    best, hits = None, 0
    for name in TEXT_BANKS:
        n = len(folded & {b.casefold() for b in bank(name)})
        if n > hits:
            best, hits = name, n
    if best and hits * 2 >= len(folded):
        return bank(best)
    words = set(re.findall(r"[a-z]+", slot.param.lower().replace("_", " ")))
    for name in TEXT_BANKS:
        if words & BANK_WORDS[name]:
            return bank(name)
    return ()


def _candidates(slot: Slot, observed: dict, rng: random.Random) -> list:
    """Values to try for `slot`, in the order to try them."""
    contexts = observed.get((slot.tool, slot.param, slot.kind), {})
    if slot.kind == "text" and slot.schema.get("enum"):
        return _enum_candidates(slot, contexts, rng)
    seen = list(contexts)
    if slot.kind == "text" and EMAIL.match(str(slot.value)):
        seen = [v for v in seen if EMAIL.match(v)]
    elif slot.kind == "text":
        seen = [v for v in seen if not EMAIL.match(v)]
        if not _bank_for(slot, observed):
            # free text takes only values written after the same word, so it fits its sentence:
            # "remind me to <a task>", "body: '<a body>'"; none such, and the value stays
            seen = [v for v in seen if slot.before in contexts[v]]
    if slot.kind == "number":
        seen = [Decimal(str(v)) for v in seen] if all(r.span is None for r in slot.refs) else []
    banked = {"text": lambda: list(_bank_for(slot, observed)),
              "currency": lambda: [c["code"] for c in currencies()],
              "time": lambda: list(bank("times")),
              "date": lambda: [_random_date(rng) for _ in range(12)],
              "number": lambda: [_similar_number(slot, rng) for _ in range(12)]}[slot.kind]()
    rng.shuffle(seen)
    rng.shuffle(banked)
    first, second = (seen, banked) if seen and (not banked or rng.random() < OBSERVED_SHARE) else (banked, seen)
    return first + second


def _enum_candidates(slot: Slot, contexts: dict, rng: random.Random) -> list:
    """Enum values some query of this parameter states (so they read as words: "any" or
    "broken_dock" may not), and of those the ones written after the same word as this slot's
    ("rides this month" -> "rides this week", never "my last ride" -> "my this year"); a one-word
    value may also stand for another one-word value ("in Celsius" -> "in Fahrenheit")."""
    stated = [v for v in slot.schema["enum"] if isinstance(v, str) and contexts.get(v)
              and v.casefold() not in ENUM_FILLERS and v != slot.value]

    def one_word(value) -> bool:
        return len(value.replace("_", " ").split()) == 1

    same = [v for v in stated if slot.before in contexts[v]]
    other = [v for v in stated if v not in same and one_word(v) and one_word(str(slot.value))]
    rng.shuffle(same)
    rng.shuffle(other)
    return same + other


def _random_date(rng: random.Random) -> str:
    start, end = DATE_RANGE
    return (start + dt.timedelta(days=rng.randrange((end - start).days + 1))).isoformat()


def _similar_number(slot: Slot, rng: random.Random) -> Decimal:
    """A number shaped like the slot's: as many digits, as many decimals; a year stays near it."""
    value = slot.value
    decimals = max(0, -value.as_tuple().exponent)
    whole = int(value)
    if 1900 <= value <= 2100 and decimals == 0:
        return Decimal(whole - rng.randint(1, 8))  # a year: an earlier one ("who won the 2018 ...")
    digits = len(str(abs(whole))) if whole else 1
    low, high = (2 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
    low = max(low, math.ceil(slot.schema.get("minimum", low)))
    high = min(high, math.floor(slot.schema.get("maximum", high)))
    if low > high:
        return value
    integer = rng.randint(low, high)
    fraction = rng.randrange(10 ** decimals) if decimals else 0
    return Decimal(integer) + Decimal(fraction).scaleb(-decimals) if decimals else Decimal(integer)


# ---- refilling -------------------------------------------------------------------------------------

def refill(example: Example, slots: list[Slot], observed: dict, rng: random.Random) -> Example | None:
    """A new Example with every slot refilled (a slot no other value fits keeps its own), or None
    when no slot could be refilled."""
    used = {fold(s.value) for s in slots}
    edits, calls = [], copy.deepcopy(example.calls)
    part_edits = defaultdict(list)  # (call, key, index) -> [(span, text)] inside one string
    changed = False
    for slot in slots:
        choice = choose(slot, observed, rng, example.query, used)
        if choice is None:
            continue  # nothing else fits this slot: it keeps its value, which is consistent
        changed = True
        new_value, query_texts = choice
        used.add(fold(new_value))
        edits += [(start, end, text) for (start, end, _), text in zip(slot.mentions, query_texts)]
        for ref in slot.refs:
            if ref.span is None:
                _set(calls[ref.call]["arguments"], ref, argument_value(slot, new_value))
            else:
                part_edits[(ref.call, ref.key, ref.index)].append((ref.span, _render(slot.kind, new_value, ref.style)))
    for (call, key, index), parts in part_edits.items():
        ref = ArgumentRef(call, key, index)
        text = _get(calls[call]["arguments"], ref)
        for (start, end), new in sorted(parts, reverse=True):
            text = text[:start] + new + text[end:]
        _set(calls[call]["arguments"], ref, text)
    if not changed:
        return None
    query = example.query
    for start, end, text in sorted(edits, reverse=True):
        query = _with_article(query[:start], query[start:end], text) + text + query[end:]
    return _variant(example, query, calls)


def _variant(example: Example, query: str, calls: list[dict]) -> Example:
    """A new row of `example` (same tools, source, system text and accepted alternatives)."""
    return Example(query=query, calls=calls, tools=example.tools, path=example.path, line=example.line,
                   system=example.system, answer=example.answer, where=example.where,
                   accept=copy.deepcopy(getattr(example, "accept", None)))


def choose(slot: Slot, observed: dict, rng: random.Random, query: str, used: set):
    """(new value, its text at each query mention) for the first candidate that renders everywhere."""
    for candidate in _candidates(slot, observed, rng):
        if fold(candidate) in used:
            continue
        texts = [_render(slot.kind, candidate, style) for *_, style in slot.mentions]
        parts_ok = all(_render(slot.kind, candidate, r.style) is not None for r in slot.refs if r.span is not None)
        if slot.kind == "number" and not _fits_number(slot, candidate):
            continue
        if None in texts or not parts_ok or any(_written(query, t) for t in texts):
            continue
        if any(_doubles_a_word(query, start, end, text) for (start, end, *_), text in zip(slot.mentions, texts)):
            continue
        return candidate, texts
    return None


ARTICLE = re.compile(r"(?<!\w)(a|an|A|An|AN)(\s+)$")


def _article(word: str) -> str:
    """"a" or "an" as written before `word` (by its spelling, with the common exceptions)."""
    word = word.casefold()
    if word.startswith(("uni", "use", "usu", "one", "once", "eu")):
        return "a"
    return "an" if word[:1] in "aeiou" or word.startswith(("hour", "honest", "honour")) else "a"


def _with_article(before: str, old: str, new: str) -> str:
    """`before` with a trailing "a"/"an" made to fit `new` when it fitted `old` ("a classic bike"
    -> "an electric bike"); an article the rule would not have written is left alone."""
    m = ARTICLE.search(before)
    if not m or not old or not new or m[1].casefold() != _article(old):
        return before
    article = _article(new)
    if m[1][0].isupper():
        article = article.upper() if m[1].isupper() and len(m[1]) > 1 else article.capitalize()
    return before[:m.start()] + article + m[2]


def fold(value) -> str:
    return str(value).casefold()


def _written(query: str, text: str) -> bool:
    """True when `text` already occurs in `query` (a refill would then say it twice)."""
    return re.search(r"(?<!\w)" + re.escape(text) + r"(?!\w)", query, re.IGNORECASE) is not None


def _doubles_a_word(query: str, start: int, end: int, text: str) -> bool:
    """True when `text` put at query[start:end] would repeat the word next to it ("the the")."""
    words = re.findall(r"[\w']+", text.casefold())
    before = re.findall(r"[\w']+", query[:start].casefold())
    after = re.findall(r"[\w']+", query[end:].casefold())
    return bool(words) and ((before and before[-1] == words[0]) or (after and after[0] == words[-1]))


def _fits_number(slot: Slot, value: Decimal) -> bool:
    if value == slot.value or value < 0 or (value <= 1 < slot.value):  # "4 people" never becomes "1 people"
        return False
    if slot.schema.get("type") == "integer" and value != value.to_integral_value():
        return False
    return slot.schema.get("minimum", value) <= value <= slot.schema.get("maximum", value)


def _render(kind: str, value, style: tuple) -> str | None:
    if kind == "text":
        _, case, underscored = style
        text = value if underscored else value.replace("_", " ")  # "flat_tyre" is written "flat tyre"
        return {"same": text, "lower": text.lower(), "upper": text.upper(),
                "first-lower": text[:1].lower() + text[1:], "first-upper": text[:1].upper() + text[1:]}[case]
    if kind == "currency":
        _, form, case = style
        text = value if form == "code" else _currency(value).get(form) or _currency(value)["plural"]
        return text.lower() if case == "lower" else text
    return spelling.render(kind, value, style)


def argument_value(slot: Slot, value):
    if slot.kind != "number":
        return value
    return int(value) if value == value.to_integral_value() else float(value)


def _get(arguments: dict, ref: ArgumentRef):
    value = arguments[ref.key]
    return value[ref.index] if ref.index is not None else value


def _set(arguments: dict, ref: ArgumentRef, value) -> None:
    if ref.index is None:
        arguments[ref.key] = value
    else:
        arguments[ref.key][ref.index] = value


def _parameters(tools: list[dict], name: str) -> dict:
    for tool in tools:
        function = tool.get("function", tool)
        if function["name"] == name:
            return function.get("parameters") or {}
    return {}
