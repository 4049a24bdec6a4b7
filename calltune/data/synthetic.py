"""Synthetic examples from an OpenAI-compatible chat endpoint (Ollama, llama-server, OpenAI, ...).

For each tool one prompt (generate.synthetic.prompt, the tool's schema, a few of your examples as
style hints and an exact reply format) asks for varied requests with their expected calls, plus
some that no tool can serve. The reply is read leniently, item by item; every item goes through
the checks a hand-written example goes through (examples.checked_example); items that repeat your
examples, your template expansions or an earlier synthetic item, exactly or nearly (the word-set
Jaccard of text.words, pairs from neardup.similar_pairs), are dropped; every drop is counted.

The endpoint is called with the standard library alone: a timeout per reply, retries with
exponential backoff (or the server's Retry-After) on timeouts, failed connections, HTTP 429 and
5xx, then an InputError that says which endpoint did what. The API key is read from the environment
variable that `api_key_env` names at each request and is never kept, logged or written.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field, fields

from calltune.data.examples import Example, checked_example, load_examples, to_record
from calltune.data.neardup import similar_pairs
from calltune.data.templates import load_templates
from calltune.data.text import query_key, words
from calltune.data.tools import load_tools
from calltune.errors import InputError

SOURCE = "synthetic"
HINTS_PER_TOOL = 3  # hand-written examples shown per tool: enough for the style, few enough not to be copied
BACKOFF_S = 1.0  # first wait before a retry; doubled after each one
MAX_WAIT_S = 60.0  # longest wait honoured from a Retry-After header
EXAMPLE_FIELDS = ("query", "calls", "system", "history", "tool_results", "answer")
_EXCERPT_CHARS = 300
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
_BETWEEN_ITEMS = re.compile(r"[\s,]*")
_NEXT_ITEM = re.compile(r",\s*(?=\{)")


@dataclass
class Counts:
    """What happened to the items asked of one tool's prompt: kept + dropped_invalid +
    dropped_duplicate == received; dropped_unparseable counts fragments that never became items."""
    requested: int = 0
    received: int = 0
    kept: int = 0
    dropped_unparseable: int = 0
    dropped_invalid: int = 0
    dropped_duplicate: int = 0


@dataclass
class Candidate:
    """A received item that passed validation, waiting for the duplicate check."""
    tool: str
    where: str  # "reply for get_weather:3": its tool's reply and its position there
    record: dict  # the line for data/synthetic/examples.jsonl
    key: str  # its normalised query (text.query_key)


@dataclass
class Synthesized:
    records: list[dict] = field(default_factory=list)
    per_tool: dict[str, Counts] = field(default_factory=dict)
    invalid_reasons: Counter = field(default_factory=Counter)  # "field: reason" of each invalid item's first problem
    dropped: list[str] = field(default_factory=list)  # why each item was dropped (a line per problem), for the log
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0

    def metrics(self) -> dict:
        per_tool = {name: asdict(counts) for name, counts in self.per_tool.items()}
        total = {f.name: sum(counts[f.name] for counts in per_tool.values()) for f in fields(Counts)}
        return {**total, "requests": self.requests, "retries": self.retries, "per_tool": per_tool,
                "invalid_reasons": dict(sorted(self.invalid_reasons.items()))}


def synthesize(gen: dict, base_seed: int, *, backoff_s: float = BACKOFF_S, report=None) -> Synthesized:
    """Ask the endpoint of `gen["synthetic"]` (the generate block of params.yaml) for examples of
    every tool; `report(tool, counts)` is called as each tool's reply has been read. Disabled, it
    returns nothing and contacts nothing. Any endpoint failure raises: there is no partial result."""
    settings = gen["synthetic"]
    if not settings["enabled"]:
        return Synthesized()
    tools = load_tools(gen["tools"])
    examples = load_examples(gen["examples"], tools)
    existing = examples + (load_templates(gen["templates"], tools, base_seed) if gen["templates"] else [])
    endpoint = Endpoint(settings["base_url"], settings["model"], settings["api_key_env"], settings["timeout_s"],
                        settings["max_retries"], backoff_s)
    first_seed = base_seed if settings["seed"] is None else settings["seed"]
    result, candidates = Synthesized(), []
    for index, tool in enumerate(tools):
        name = tool["function"]["name"]
        prompt = build_prompt(tool, tools, style_hints(examples, name), settings)
        provenance = {"source": SOURCE, "tool": name, "model": settings["model"], "base_url": settings["base_url"],
                      "prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
                      "temperature": settings["temperature"], "seed": first_seed + index}
        reply = endpoint.chat([{"role": "user", "content": prompt}], temperature=settings["temperature"],
                              seed=first_seed + index, max_tokens=settings["max_tokens"])
        candidates += _read_reply(reply, tools, provenance, settings, result)
        if report:
            report(name, result.per_tool[name])
    _drop_duplicates(candidates, existing, settings["near_duplicate"], result)
    result.requests, result.retries = endpoint.requests, endpoint.retries
    return result


def style_hints(examples: list[Example], tool_name: str) -> list[dict]:
    """The first few single-turn hand-written examples that call the tool, in examples.jsonl form."""
    calling = [e for e in examples
               if not e.system and not e.history and any(c["name"] == tool_name for c in e.calls)]
    return [{"query": e.query, "calls": e.calls} for e in calling[:HINTS_PER_TOOL]]


def build_prompt(tool: dict, tools: list[dict], hints: list[dict], settings: dict) -> str:
    """The one user message sent for `tool` (its sha256 goes into every record's provenance)."""
    function = tool["function"]
    others = [t["function"] for t in tools if t["function"]["name"] != function["name"]]
    parts = [settings["prompt"].strip(), f"The tool, as JSON:\n{json.dumps(function, ensure_ascii=False)}"]
    if others:
        parts.append("The assistant's other tools:\n" +
                     "\n".join(f"- {o['name']}" + (f": {o['description']}" if o["description"] else "")
                               for o in others))
    if hints:
        parts.append("Examples of the form (write new requests, never these):\n" +
                     "\n".join(json.dumps(h, ensure_ascii=False) for h in hints))
    parts.append(reply_format(function["name"], settings["examples_per_tool"], settings["no_call_per_tool"],
                              bool(others)))
    return "\n\n".join(parts)


def reply_format(name: str, with_call: int, without_call: int, other_tools: bool) -> str:
    call = f'{{"name": "{name}", "arguments": {{<values that follow the schema>}}}}'
    lines = [f"Reply with only a JSON list of {with_call + without_call} objects, nothing before or after it:",
             f'- {with_call} requests that {name} serves, each {{"query": "<what the user types>", "calls": [{call}]}}']
    if without_call:
        none_fit = "none of the tools" if other_tools else "no tool"
        lines.append(f'- {without_call} requests that {none_fit} can serve, each '
                     f'{{"query": "<what the user types>", "calls": []}}')
    return "\n".join(lines)


def parse_reply(text: str) -> tuple[list, int]:
    """(items, unparseable) of a reply that should be a JSON list. Code fences and text around the
    list are ignored; when the list itself is broken it is read item by item, so a broken item (or
    the last one, cut off by max_tokens) costs only itself. A reply without a list is one
    unparseable fragment."""
    text = _FENCE.sub("", text).strip()
    whole = _whole_list(text)
    if whole is not None:
        return whole, 0
    start = text.find("[")
    if start < 0:
        return [], 1
    decoder, items, unparseable, pos = json.JSONDecoder(), [], 0, start + 1
    while True:
        pos = _BETWEEN_ITEMS.match(text, pos).end()
        if pos >= len(text) or text[pos] == "]":
            return items, unparseable
        try:
            item, pos = decoder.raw_decode(text, pos)
            items.append(item)
        except json.JSONDecodeError:
            unparseable += 1
            following = _NEXT_ITEM.search(text, pos + 1)
            if following is None:
                return items, unparseable
            pos = following.end()


def _whole_list(text: str) -> list | None:
    """The reply's list when the reply is exactly valid JSON: a list, or an object wrapping one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and "query" not in value:
        lists = [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if len(lists) == 1 else [value]
    elif isinstance(value, dict):
        value = [value]
    return value if isinstance(value, list) else None


def _read_reply(reply: str, tools: list[dict], provenance: dict, settings: dict,
                result: Synthesized) -> list[Candidate]:
    """Parse and validate one tool's reply, counting into `result`; the valid items come back."""
    name = provenance["tool"]
    items, unparseable = parse_reply(reply)
    counts = result.per_tool[name] = Counts(
        requested=settings["examples_per_tool"] + settings["no_call_per_tool"], received=len(items),
        dropped_unparseable=unparseable)
    if unparseable:
        result.dropped.append(f"reply for {name}: {unparseable} fragment(s) not readable as JSON (dropped)")
    candidates = []
    for position, item in enumerate(items, start=1):
        example, problems = checked_example(item, tools, f"reply for {name}", position)
        if problems:
            counts.dropped_invalid += 1
            first = problems[0]
            result.invalid_reasons[f"{first.field}: {first.reason}" if first.field else first.reason] += 1
            result.dropped.extend(f"{p.describe()} (dropped)" for p in problems)
            continue
        record = {key: item[key] for key in EXAMPLE_FIELDS if key in item}
        candidates.append(Candidate(name, f"reply for {name}:{position}", {**record, "provenance": provenance},
                                    example_key(example)))
    return candidates


def example_key(example: Example) -> str:
    """The normalised query that generate's duplicate check compares (text.query_key)."""
    return query_key(to_record(example, "", "")["messages"])


def _drop_duplicates(candidates: list[Candidate], existing: list[Example], threshold: float,
                     result: Synthesized) -> None:
    """Keep each candidate that neither equals nor nearly equals (Jaccard >= threshold) an existing
    example or an earlier kept candidate; count and log the others."""
    labels = [e.source for e in existing] + [c.where for c in candidates]
    keys = [example_key(e) for e in existing] + [c.key for c in candidates]
    near: dict[int, list[int]] = {}
    for i, j in similar_pairs([words(k) for k in keys], threshold):
        near.setdefault(j, []).append(i)
    first_of_key = {}
    for i, key in enumerate(keys[: len(existing)]):
        first_of_key.setdefault(key, i)
    kept = set(range(len(existing)))
    for j, candidate in enumerate(candidates, start=len(existing)):
        counts = result.per_tool[candidate.tool]
        same = first_of_key.get(candidate.key)
        similar = next((i for i in near.get(j, []) if i in kept), None)
        if same is None and similar is None:
            kept.add(j)
            first_of_key[candidate.key] = j
            counts.kept += 1
            result.records.append(candidate.record)
            continue
        counts.dropped_duplicate += 1
        what = f"duplicate of {labels[same]}" if same is not None else f"near-duplicate of {labels[similar]}"
        result.dropped.append(f"{candidate.where} [query]: {what} (dropped)")


class _Retryable(Exception):
    """A failure worth another try: `what` happened (for the final message), `detail` says more,
    `wait` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, what: str, detail: str, wait: float | None = None):
        super().__init__(what)
        self.what, self.detail, self.wait = what, detail, wait


@dataclass
class Endpoint:
    """POST {base_url}/chat/completions, with retries; counts the requests it sends."""
    base_url: str
    model: str
    api_key_env: str
    timeout_s: float
    max_retries: int
    backoff_s: float = BACKOFF_S
    requests: int = 0
    retries: int = 0

    def chat(self, messages: list[dict], **options) -> str:
        """The text of the first choice of one chat completion ("" when it has none)."""
        body = json.dumps({"model": self.model, "messages": messages, "stream": False, **options}).encode("utf-8")
        key = os.environ.get(self.api_key_env)  # read at each call, never stored
        tries, failure = self.max_retries + 1, None
        for attempt in range(tries):
            if attempt:
                self.retries += 1
                time.sleep(failure.wait if failure.wait is not None else self.backoff_s * 2 ** (attempt - 1))
            self.requests += 1
            try:
                return reply_text(self._post(body, key), self.base_url, key)
            except _Retryable as e:
                failure = e
        raise InputError(f"endpoint {self.base_url} {failure.what} after {tries} {'try' if tries == 1 else 'tries'}: "
                         f"{failure.detail}")

    def _post(self, body: bytes, key: str | None) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url.rstrip('/')}/chat/completions", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise self._http_failure(e, key) from None
        except TimeoutError:
            raise self._timed_out() from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise self._timed_out() from None
            raise _Retryable("unreachable", _describe_os_error(e.reason)) from None
        except (ConnectionError, http.client.HTTPException) as e:  # reset or closed in the middle of a reply
            raise _Retryable("dropped the connection", _describe_os_error(e)) from None

    def _timed_out(self) -> _Retryable:
        return _Retryable("timed out", f"no reply within timeout_s={self.timeout_s:g} s")

    def _http_failure(self, error: urllib.error.HTTPError, key: str | None) -> Exception:
        status = error.code
        try:
            text = _excerpt(error.read(), key)
        except (OSError, http.client.HTTPException):
            text = ""
        if status == 429:
            return _Retryable("rate-limited (HTTP 429)", text or "too many requests", _retry_after(error.headers))
        if status >= 500:
            return _Retryable(f"failed with HTTP {status}", text or "server error", _retry_after(error.headers))
        if status in (401, 403):
            state = "is set" if key else "is not set"
            return InputError(f"endpoint {self.base_url} refused the request (HTTP {status}): check the API key in "
                              f"the environment variable {self.api_key_env} (it {state})")
        return InputError(f"endpoint {self.base_url} rejected the request (HTTP {status}): {text or 'no details'}")


def reply_text(body: bytes, base_url: str, key: str | None = None) -> str:
    """choices[0].message.content of an OpenAI chat completion; anything else is a clear error."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InputError(f"endpoint {base_url} answered with something that is not JSON: {_excerpt(body, key)!r} "
                         "(is base_url the OpenAI-compatible API, e.g. ending in /v1?)") from None
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InputError(f"endpoint {base_url} answered without choices[0].message, not an OpenAI chat completion: "
                         f"{_excerpt(body, key)}") from None
    if content is not None and not isinstance(content, str):
        raise InputError(f"endpoint {base_url} answered with a non-text message content: {_excerpt(body, key)}")
    return content or ""


def _retry_after(headers) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), at most MAX_WAIT_S; None if absent or unreadable."""
    value = (headers.get("Retry-After") or "").strip() if headers else ""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_WAIT_S)


def _describe_os_error(error) -> str:
    text = str(getattr(error, "strerror", None) or error or type(error).__name__)
    return text[:1].lower() + text[1:]


def _excerpt(body: bytes, key: str | None = None) -> str:
    """The start of a response body for an error message, with the API key blanked if echoed."""
    text = body.decode("utf-8", errors="replace").strip()
    if key:
        text = text.replace(key, "***")
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."
