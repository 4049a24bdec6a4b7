"""The foundation's training corpus: BFCL's live and exec items plus calltune's everyday tool bank,
each prompt padded with distractor tools, split into train and valid.

1. BFCL training categories (bfcl_data.TRAIN_CATEGORIES) through calltune's importer; items that
   share a function name or a question with the held-out categories are dropped and counted.
2. The tool bank (foundation/toolbank: tools, templates and examples per everyday domain).
3. Composed parallel rows: 2..4 single-call requests joined into one message with every call;
   varied parallel rows: one request asking for its call at 2..4 values of one argument in one
   clause ("the weather in Paris, Oslo and Rome"); paired parallel rows: the same with two
   neighbouring values varied in step ("$30 in Chicago and $52 in Austin"); and
   swapped no-call rows: a call row's request offered only tools that cannot serve it (unrelated
   tools from the whole pool, and near ones: other tools of the request's own tool-bank domain).
4. Distractors: every prompt declares its own tools plus 0..distractors_max others drawn from the
   whole pool (bank + BFCL training tools), in a shuffled order, so the model learns to choose a
   tool by its description, not by its position or by being the only one offered.
5. Canonical records (the same `to_record` the generate stage uses), exact duplicates dropped, and
   calltune's leak-free splitter (near-duplicates kept on one side) deals train and valid.
Everything is a function of the params and the seed; meta.source names files relative to the
repository and to bfcl_eval's install, so the corpus is byte-identical wherever it is built.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

from calltune.data import augment, spelling
from calltune.data.examples import Example, example_errors, to_record
from calltune.data.split import split_dataset
from calltune.data.text import normalise_text, query_key
from calltune.errors import InputError
from calltune.foundation import bfcl_data
from calltune.foundation.toolbank import TOOLBANK_ROOT, load_toolbank


@dataclass
class Corpus:
    train: list[dict]
    valid: list[dict]
    report: dict


def machine_roots() -> tuple[str, ...]:
    """The directories that differ between machines: bfcl_eval's site-packages and the repository."""
    return tuple(f"{root}/" for root in (bfcl_data.data_dir().parents[1], TOOLBANK_ROOT.parents[1]))


def portable_source(source: str, roots: tuple[str, ...]) -> str:
    """A record's meta.source ("<file>:<line>", joined by "+" for composed rows) without this machine's
    directories: the absolute paths made every record differ between two checkouts (the
    "3.11-vs-3.12" corpus sha difference of foundation/README.md). Error messages keep full paths."""
    for root in roots:
        source = source.replace(root, "")
    return source


def tool_name(tool: dict) -> str:
    return tool["function"]["name"]


def build_corpus(cfg: dict, seed: int) -> Corpus:
    """`cfg` is the `corpus` block of foundation/params.yaml."""
    rng = random.Random(seed)
    guard = bfcl_data.held_out()
    sources: list[tuple[str, Example]] = []
    report: dict = {"bfcl": {}, "leaks_dropped": Counter(), "skipped_invalid": 0}
    for category in cfg["bfcl_categories"]:
        if category in bfcl_data.HELD_OUT_CATEGORIES:
            raise InputError(f"{category!r} is held out for evaluating the foundation, never trained on",
                             field="corpus.bfcl_categories")
        examples, skipped = bfcl_data.import_category(category)
        report["skipped_invalid"] += skipped
        kept = []
        for example in examples:
            if why := guard.leaks(example):
                report["leaks_dropped"][why] += 1
            else:
                kept.append(example)
        report["bfcl"][category] = len(kept)
        sources += [(f"bfcl:{category}", ex) for ex in kept]
    if cfg["toolbank"]:
        bank = load_toolbank(seed=seed)
        leaked = [ex for ex in bank if guard.leaks(ex)]
        if leaked:  # the bank is ours: a clash with a held-out name is a bug to fix in the bank
            raise InputError("the tool bank shares a function name or question with held-out BFCL data",
                             path=leaked[0].path, line=leaked[0].line)
        sources += [("toolbank", ex) for ex in bank]
    composed = compose_parallel([ex for _, ex in sources], cfg["compose_parallel"], rng,
                                cfg.get("compose_max_parts", 2))
    varied = vary_parallel([ex for _, ex in sources], cfg.get("vary_parallel", 0), rng,
                           cfg.get("compose_max_parts", 2))
    paired = vary_pairs([ex for _, ex in sources], cfg.get("vary_pairs", 0), rng, cfg.get("compose_max_parts", 2))
    report["composed_parallel"], report["varied_parallel"] = len(composed), len(varied)
    report["paired_parallel"] = len(paired)
    sources += [("composed", ex) for ex in composed] + [("varied", ex) for ex in varied]
    sources += [("paired", ex) for ex in paired]
    pool = distractor_pool(ex for _, ex in sources)
    swapped = swap_no_call([ex for _, ex in sources], cfg.get("swap_no_call", 0), pool, rng)
    near = swap_near([ex for kind, ex in sources if kind == "toolbank"], cfg.get("swap_near", 0), rng)
    report["swapped_no_call"], report["swapped_near"] = len(swapped), len(near)
    sources += [("swapped", ex) for ex in swapped + near]
    records, swaps, seen, kinds = [], [], set(), Counter()
    roots = machine_roots()
    for kind, example in sources:
        record = to_record(with_distractors(example, pool, cfg, rng), "", cfg["no_call_answer"])
        record["meta"]["source"] = portable_source(record["meta"]["source"], roots)
        key = query_key(record["messages"]) + "\x00" + ",".join(sorted(map(tool_name, example.tools)))
        if key in seen:
            kinds["duplicate"] += 1
            continue
        seen.add(key)
        record["id"] = f"fd-{len(records) + len(swaps) + 1:06d}"
        (swaps if kind == "swapped" else records).append(record)
        kinds[kind.split(":")[0]] += 1
    result = split_dataset(records, {"train": 1 - cfg["valid"], "valid": cfg["valid"], "test": 0.0},
                           cfg["near_duplicate"], seed)
    # A swapped row asks its origin's question (the splitter would drop it as an exact duplicate): it
    # joins the split that question went to, so no valid question is also trained on.
    side = {query_key(r["messages"]): name for name in ("train", "valid") for r in result.splits[name]}
    for record in swaps:
        result.splits[side[query_key(record["messages"])]].append(record)
    records += swaps
    report.update(summarise(records, result.splits["train"], result.splits["valid"]))
    report["kinds"] = dict(kinds)
    report["leaks_dropped"] = dict(report["leaks_dropped"])
    report["distractor_pool"] = len(pool)
    report["split"] = result.report
    return Corpus(result.splits["train"], result.splits["valid"], report)


_JOINS = ("{a} Also, {b}", "{a} And {b}", "{a}; {b}", "{a} Then {b}", "{a}\n{b}", "{a} Plus: {b}")


def compose_parallel(examples: list[Example], n: int, rng: random.Random, max_parts: int = 2) -> list[Example]:
    """`n` parallel-call rows made by joining 2..`max_parts` single-call requests into one message
    (the count uniform in that range): half from requests for the same tool (parallel), half from
    any tools (parallel multiple). The prompt declares the union of the requests' tools; requests
    with history or a system text, or whose tool lists disagree on a shared name, are not joined."""
    singles = lone_single_calls(examples)
    by_tool: dict[str, list[Example]] = {}
    for ex in singles:
        by_tool.setdefault(ex.calls[0]["name"], []).append(ex)
    out, tries = [], 0
    while len(out) < n and len(singles) > 1 and tries < 20 * n:
        tries += 1
        k = 2 if max_parts <= 2 else rng.randint(2, max_parts)
        repeatable = sorted(name for name, exs in by_tool.items() if len(exs) >= k)
        if len(out) % 2 == 0 and repeatable:
            parts = rng.sample(by_tool[rng.choice(repeatable)], k)
        else:
            parts = rng.sample(singles, min(k, len(singles)))
        if (joined := _join(parts, rng)) is not None:
            out.append(joined)
    return out


def _join(parts: list[Example], rng: random.Random) -> Example | None:
    """One request asking for every part's call, or None where the parts' tools disagree on a name
    or two parts ask the same question."""
    first = parts[0]
    tools = {tool_name(t): t for t in first.tools}
    queries = {first.query.strip()}
    text, calls = first.query.strip(), list(first.calls)
    for part in parts[1:]:
        if any(tools.get(tool_name(t), t) != t for t in part.tools) or part.query.strip() in queries:
            return None
        tools.update({tool_name(t): t for t in part.tools})
        queries.add(part.query.strip())
        nxt = part.query.strip()
        text = rng.choice(_JOINS).format(a=text, b=nxt[:1].lower() + nxt[1:])
        calls += part.calls
    return replace(first, query=text, calls=calls, tools=list(tools.values()), line=None,
                   path="+".join(p.source for p in parts), answer=None)


_LISTS = ("{a} and {b}", "both {a} and {b}", "{a} & {b}")  # two values; three or more: "a, b and c" or "a, b, and c"


def vary_parallel(examples: list[Example], n: int, rng: random.Random, max_values: int = 2) -> list[Example]:
    """`n` parallel rows that ask for one call several times inside one clause, one value varied
    ("the weather in Paris" -> "the weather in Paris, Oslo and Rome", three calls that differ in the
    city): how BFCL's parallel requests read ("the area of circles of radius 3, 5 and 7"), which the
    composed rows ("X. Also, Y") do not teach. The varied value is a slot of calltune's augmentation
    (a value the query states once, as a whole argument, refillable consistently), refilled 1..max_values-1
    times with values of the same tool parameter seen elsewhere, its enum or a typed bank; a value
    after "a"/"an" is not varied (the article would fit one value only), nor a number next to another
    number ("legs of 3, 5 and 6 and 40" would not say which is which), nor free text of more than four
    words or with punctuation ("both here you go and could we talk?")."""
    def options(ex: Example) -> list[tuple]:
        return [(s,) for s in augment.find_slots(ex) if _listable(s, ex.query)]

    return _draw(examples, n, rng, max_values, options, _LISTS, "varied")


def vary_pairs(examples: list[Example], n: int, rng: random.Random, max_values: int = 2) -> list[Example]:
    """`n` parallel rows that vary two arguments in step inside one clause ("tax on $30 in Chicago"
    -> "tax on $30 in Chicago and $52 in Austin", two calls that differ in both): BFCL's parallel
    requests often list value pairs, which vary_parallel's rows (one value varied) do not teach, and
    a model taught only those keeps the first pair's other value for every call. The two values are
    augmentation slots stated next to each other (at most three words between them, no punctuation
    and no "and"), each listable as vary_parallel's value is; the segment from the first value to the
    second is repeated with 1..max_values-1 new pairs."""
    return _draw(examples, n, rng, max_values, _adjacent_pairs, _PAIR_LISTS, "paired")


def _draw(examples: list[Example], n: int, rng: random.Random, max_values: int, options, joins: tuple,
          tag: str) -> list[Example]:
    """Up to `n` rows, each a random single-call example with one of `options(example)` (a tuple of
    slots) listed at 2..max_values values (_vary); 20 tries per wanted row."""
    singles = lone_single_calls(examples)
    observed = augment.observed_values(singles)
    out, tries = [], 0
    while len(out) < n and singles and tries < 20 * n:
        tries += 1
        ex = rng.choice(singles)
        found = options(ex)
        if found and (row := _vary(ex, rng.choice(found), rng.randint(2, max(2, max_values)), observed, rng,
                                   joins, tag)):
            out.append(row)
    return out


def _listable(slot, query: str, beside: tuple[int, int] | None = None) -> bool:
    """A slot whose value can stand in a list: one mention, a whole argument, no article before it,
    a number only where no other number is written (but the one `beside` it, listed with it), text
    only short."""
    if len(slot.mentions) != 1 or any(r.span is not None or r.index is not None for r in slot.refs):
        return False
    start, end, _ = slot.mentions[0]
    if augment.ARTICLE.search(query[:start]):
        return False
    if slot.kind == "number":
        return not any(m.kind == "number" and not spelling.overlaps(m.span, (start, end))
                       and not (beside and spelling.overlaps(m.span, beside)) for m in spelling.find_all(query))
    return slot.kind != "text" or _short_text(query[start:end])


def _short_text(text: str) -> bool:
    """Text that reads as one item of a list: at most four words, no punctuation."""
    return len(text.split()) <= 4 and not any(c in text for c in ",.;:!?()")


_LIST_WORDS = {"and", "or", "plus", "both", "also", "then"}
_PAIR_LISTS = ("{a} and {b}", "{a} & {b}")  # no "both": it would stand before the first value, inside the clause


def _adjacent_pairs(ex: Example) -> list[tuple]:
    """Pairs of slots of `ex` whose values stand next to each other in its query, each listable with
    the other beside it, for different argument keys, with a short gap between them without
    punctuation or a word that would read as the list's own joint ("and")."""
    slots = sorted((s for s in augment.find_slots(ex) if len(s.mentions) == 1
                    and all(r.span is None and r.index is None for r in s.refs)), key=lambda s: s.mentions[0][0])
    pairs = []
    for a, b in zip(slots, slots[1:]):
        (a0, a1, _), (b0, b1, _) = a.mentions[0], b.mentions[0]
        gap = ex.query[a1:b0]
        if (a1 > b0 or len(gap.split()) > 3 or any(c in gap for c in ",.;:!?()&'\"\n")
                or _LIST_WORDS & set(gap.casefold().split())):  # "72 inches and 160, 175 inches and 304"
            continue
        if ({r.key for r in a.refs} & {r.key for r in b.refs} or not _listable(a, ex.query, beside=(b0, b1))
                or not _listable(b, ex.query, beside=(a0, a1))):
            continue
        pairs.append((a, b))
    return pairs


def _vary(ex: Example, slots: tuple, k: int, observed: dict, rng: random.Random, joins: tuple,
          tag: str) -> Example | None:
    """`ex` asking for its call at k values of `slots` (one slot, or neighbours varied in step; its
    own values first), or None when fewer fit. The query's segment from the first slot to the last
    is listed once per value set; each call refills every slot."""
    used, values = [{augment.fold(s.value)} for s in slots], []
    for _ in range(k - 1):
        chosen = [augment.choose(slot, observed, rng, ex.query, seen) for slot, seen in zip(slots, used)]
        if None in chosen:
            break
        for seen, (value, _) in zip(used, chosen):
            seen.add(augment.fold(value))
        values.append(chosen)
    if not values:
        return None
    if any(s.kind == "text" and not _short_text(texts[0]) for chosen in values
           for s, (_, texts) in zip(slots, chosen)):  # the query's own texts: checked by _listable
        return None
    start, end = slots[0].mentions[0][0], slots[-1].mentions[0][1]
    segments = [ex.query[start:end]]
    for chosen in values:
        segment = ex.query[start:end]
        for slot, (_, texts) in reversed(list(zip(slots, chosen))):
            s0, s1, _ = slot.mentions[0]
            segment = segment[:s0 - start] + texts[0] + segment[s1 - start:]
        segments.append(segment)
    listed = (rng.choice(joins).format(a=segments[0], b=segments[1]) if len(segments) == 2 else
              ", ".join(segments[:-1]) + rng.choice((" and ", ", and ")) + segments[-1])
    calls = [ex.calls[0]]
    for chosen in values:
        call = {"name": ex.calls[0]["name"], "arguments": dict(ex.calls[0]["arguments"])}
        for slot, (value, _) in zip(slots, chosen):
            for ref in slot.refs:
                call["arguments"][ref.key] = augment.argument_value(slot, value)
        calls.append(call)
    row = replace(ex, query=ex.query[:start] + listed + ex.query[end:], calls=calls, accept=None, answer=None,
                  line=None, path=f"{ex.source}~{tag}")
    return None if example_errors(row) else row


# Name words of tools that could serve almost any request (a web search, a free-form answer), or that
# serve a request under another word: never offered as the tool a swapped row must decline.
_CATCH_ALL = {"search", "google", "web", "query", "ask", "answer", "say", "question", "chat", "llm", "request",
              "requests", "http", "assistant", "help", "forecast", "weather", "temperature", "news", "lookup"}


def swap_no_call(examples: list[Example], n: int, pool: list[dict], rng: random.Random) -> list[Example]:
    """`n` no-call rows made from call rows by taking their tools away: the request is kept and 1..3
    tools from the pool are offered that cannot serve it, so the right answer is to decline (how
    BFCL's irrelevance items are built). A pool tool is not offered when a content word of its name
    occurs in the request, in the names or descriptions of the tools the request was written for."""
    singles = [ex for ex in examples if ex.calls and one_turn(ex)]
    out, tries = [], 0
    while len(out) < n and singles and pool and tries < 20 * n:
        tries += 1
        ex = rng.choice(singles)
        text = " ".join([ex.query] + [tool_name(t) + " " + t["function"].get("description", "") for t in ex.tools])
        banned = content_words(text.replace("_", " "))
        own = {tool_name(t) for t in ex.tools}
        offered: dict[str, dict] = {}
        for _ in range(rng.randint(1, 3)):
            tool = pool[rng.randrange(len(pool))]
            words = name_words(tool_name(tool))
            if tool_name(tool) not in own and not words & (banned | _CATCH_ALL):
                offered[tool_name(tool)] = tool
        if offered:
            out.append(replace(ex, calls=[], tools=list(offered.values()), accept=None, answer=None, line=None,
                               path=f"{ex.source}~swapped"))
    return out


# Words that many tools of one domain share without doing the same thing (convert_temperature,
# convert_length_units): not a sign that a sibling can serve the request.
_SHARED_WORDS = {"convert", "compute", "calculate", "units", "unit", "value", "values", "number"}


def swap_near(examples: list[Example], n: int, rng: random.Random) -> list[Example]:
    """`n` no-call rows whose offered tools are *near* the request: other tools of its own domain (a
    tool-bank example declares its domain; a random subset, uniform in size, like `own_tools: subset`
    offers a call row's), so declining needs the tool's meaning, not its topic
    (a temperature question offered a length converter and a loan calculator). A sibling is not offered
    when a content word of its name (words like convert or units aside) occurs in the request or in the called tool's
    name or description (make_phone_call is never offered for a make_video_call request)."""
    singles = [ex for ex in examples if len(ex.calls) == 1 and one_turn(ex) and len(ex.tools) > 1]
    out, tries = [], 0
    while len(out) < n and singles and tries < 20 * n:
        tries += 1
        ex = rng.choice(singles)
        called = next(t for t in ex.tools if tool_name(t) == ex.calls[0]["name"])
        text = " ".join([ex.query, tool_name(called), called["function"].get("description", "")])
        banned = content_words(text.replace("_", " ")) - _SHARED_WORDS
        siblings = [t for t in ex.tools if tool_name(t) != tool_name(called)
                    and not name_words(tool_name(t)) & (banned | _CATCH_ALL)]
        if siblings:
            offered = rng.sample(siblings, rng.randint(1, len(siblings)))
            out.append(replace(ex, calls=[], tools=offered, accept=None, answer=None, line=None,
                               path=f"{ex.source}~near"))
    return out


def distractor_pool(examples) -> list[dict]:
    """Every distinct tool (first declaration of each name wins), in a stable order."""
    pool: dict[str, dict] = {}
    for example in examples:
        for tool in example.tools:
            pool.setdefault(tool_name(tool), tool)
    return [pool[name] for name in sorted(pool)]


# Words too common in tool names to say two tools do the same thing.
_GENERIC = {"get", "set", "add", "create", "update", "delete", "remove", "list", "find", "search", "check",
            "send", "make", "start", "stop", "info", "details", "data", "by", "for", "the", "to", "of", "and", "new"}


def content_words(text: str) -> set[str]:
    """The words of `text` (normalised) longer than two letters: what "shares a word" compares."""
    return {w for w in normalise_text(text).split() if len(w) > 2}


def lone_single_calls(examples: list[Example]) -> list[Example]:
    """One-call lone requests under 400 characters: the rows composed and varied rows are made from."""
    return [ex for ex in examples if len(ex.calls) == 1 and one_turn(ex) and len(ex.query) < 400]


def one_turn(example: Example) -> bool:
    """A lone request: no history, no system text, no tool results (rows that can be joined or swapped)."""
    return not example.history and not example.system and example.tool_results is None


def name_words(name: str) -> set[str]:
    return {w for w in name.lower().split("_") if len(w) > 2} - _GENERIC


def with_distractors(example: Example, pool: list[dict], cfg: dict, rng: random.Random) -> Example:
    """The example offered the tools it calls, some of its other tools and k random others, all in a
    shuffled order.

    - Its own uncalled tools (the rest of a tool-bank domain, BFCL's alternatives) are hard negatives:
      with `own_tools: subset` a random number of them (uniform in 0..all) is kept, with `all` every
      one. A no-call row keeps at least one of its own tools.
    - With probability `only_needed` nothing else is offered: the called tools alone (one of its
      tools for a no-call row), as in most held-out-style prompts (one function, call it or not).
    - Otherwise k distractors from the whole pool, k uniform in 0..distractors_max (fewer when that
      would exceed max_tools).

    Call and no-call rows are treated alike, so how many tools a prompt declares says nothing about
    whether to call one (a first GPU run, where the tool bank always offered a whole domain and only
    call rows had distractors, learnt "one BFCL-style tool: decline" and declined every held-out
    request). Label noise is kept out on both sides: a distractor whose name shares a content word
    with one of the example's tools ("weather", "alarm") might do the same job, and for a no-call row
    one whose name shares a word with the request might serve it after all; neither is drawn."""
    called = {call["name"] for call in example.calls}
    needed = [t for t in example.tools if tool_name(t) in called]
    others = [t for t in example.tools if tool_name(t) not in called]
    if not needed and others:
        needed = [others.pop(rng.randrange(len(others)))]
    only = rng.random() < cfg.get("only_needed", 0.0)
    if cfg.get("own_tools", "all") == "subset" or only:
        others = [] if only else rng.sample(others, rng.randint(0, len(others)))
    own = {tool_name(t) for t in example.tools}  # never offered as distractors, kept or not
    banned = set().union(*(name_words(n) for n in own))
    if not example.calls:
        banned |= content_words(example.query)
    offered = needed + others
    room = max(0, cfg["max_tools"] - len(offered))
    k = 0 if only else min(rng.randint(0, cfg["distractors_max"]), room)
    extra, tries = [], 0
    while len(extra) < k and pool and tries < 20 * cfg["distractors_max"]:
        tries += 1
        tool = pool[rng.randrange(len(pool))]
        if tool_name(tool) not in own and not name_words(tool_name(tool)) & banned:
            own.add(tool_name(tool))
            extra.append(tool)
    tools = offered + extra
    rng.shuffle(tools)
    return replace(example, tools=tools)


def summarise(records: list[dict], train: list[dict], valid: list[dict]) -> dict:
    def calls(rows):
        n = Counter(len(r["meta"]["calls"]) for r in rows)
        return {"no_call": n[0], "one_call": n[1], "parallel": sum(v for k, v in n.items() if k > 1)}

    tools_per_prompt = [len(r["tools"]) for r in records]
    return {
        "n_records": len(records), "n_train": len(train), "n_valid": len(valid),
        "train_calls": calls(train), "valid_calls": calls(valid),
        "distinct_tools_called": len({name for r in records for name in r["meta"]["calls"]}),
        "tools_per_prompt_mean": round(sum(tools_per_prompt) / max(1, len(records)), 2),
        "tools_per_prompt_max": max(tools_per_prompt, default=0),
    }
