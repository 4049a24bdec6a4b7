"""generate.synthetic: examples asked of an OpenAI-compatible endpoint, validated, deduplicated,
counted and written with their provenance by the synthesize stage.

The acceptance test runs a real llama.cpp server on a tiny GGUF taught (here) to answer the
synthetic prompt with a reply that mixes a new example, a duplicate, an invalid call, a no-call
request and junk. The failure paths a real engine cannot be made to produce (refused connections,
timeouts, HTTP 429/5xx, malformed answers) run against a small scripted HTTP server in a thread.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import time
from contextlib import contextmanager

import pytest
import yaml
from click.testing import CliRunner
from data_helpers import (
    ROOT,
    stage_main,
    repo_params,
    tools_file,
    weather,
    write_json,
    write_jsonl,
)
from http_helpers import serving_in_thread

from calltune.data.generate import generate
from calltune.data.synthetic import build_prompt, parse_reply, synthesize
from calltune.errors import InputError
from calltune.llama_server import free_port
from calltune.params import validate_params

synthesize_stage = stage_main("synthesize")
KEY_ENV = "CALLTUNE_TEST_API_KEY"
SECRET = "sk-test-0123456789-SECRET"
NO_CALL = "Sorry, no tool fits."


def settings(base_url: str, **overrides) -> dict:
    """A complete generate.synthetic block for tests (greedy, seeded, one retry)."""
    return {"enabled": True, "base_url": base_url, "model": "tiny-test", "api_key_env": KEY_ENV,
            "examples_per_tool": 3, "no_call_per_tool": 1, "temperature": 0, "seed": 7, "max_tokens": 256,
            "timeout_s": 5, "max_retries": 1, "near_duplicate": 0.8, "prompt": "Write short requests.",
            **overrides}


def gen_block(tmp_path, synthetic: dict, examples=None, tools=None, templates="") -> dict:
    """The generate block of params.yaml over files written to tmp_path."""
    rows = examples if examples is not None else [{"query": "What is the weather in Oslo?", "calls": [weather("Oslo")]},
                                                  {"query": "Tell me a joke", "calls": []}]
    tools_path = write_json(tmp_path / "tools.json", tools) if tools is not None else tools_file(tmp_path)
    return {"tools": str(tools_path), "examples": str(write_jsonl(tmp_path / "examples.jsonl", rows)),
            "templates": templates, "imports": [], "no_call_answer": NO_CALL, "duplicate_queries": "warn",
            "augment": {"enabled": False, "per_example": 0, "target_per_tool": 0}, "no_call_share": 0,
            "synthetic": synthetic}


def completion(content) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "tiny-test",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


def reply_of(*items) -> dict:
    return completion(json.dumps(list(items)))


def run_stage(tmp_path, gen: dict):
    params = repo_params(tmp_path, generate=gen)
    out, metrics = tmp_path / "out" / "examples.jsonl", tmp_path / "metrics" / "synthetic.json"
    result = CliRunner().invoke(synthesize_stage, ["--params", str(params), "--out", str(out),
                                                   "--metrics", str(metrics)])
    return result, out, metrics


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- a scripted OpenAI-compatible endpoint --------------------------------------------------------

class Script:
    """Answers in order (the last one repeats): a completion dict, or {"status", "body", "headers",
    "delay"}. Records every request's headers and JSON body."""

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []

    def next(self) -> dict:
        answer = self.answers[min(len(self.requests) - 1, len(self.answers) - 1)]
        return answer if "status" in answer else {"status": 200, "body": answer}


@contextmanager
def fake_endpoint(*answers):
    """(base_url, script) of a scripted endpoint on 127.0.0.1 (a free port), in a thread; always shut down."""
    script = Script(answers)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            script.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            answer = script.next()
            time.sleep(answer.get("delay", 0))
            payload = answer.get("body", b"")
            payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(answer["status"])
                for name, value in answer.get("headers", {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout tests)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.block_on_close = True, False
    with serving_in_thread(server) as base:
        yield f"{base}/v1", script


# --- acceptance: a real llama.cpp server -------------------------------------------------------------

TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME_EXAMPLES = [{"query": "What time is it in Lima?", "calls": [{"name": "get_time", "arguments": {"city": "Lima"}}]},
                 {"query": "Tell me a joke", "calls": []}]
# One new example, a duplicate of a hand-written one, a call that breaks the schema, a no-call
# request, then junk that is not JSON.
TAUGHT_REPLY = ('[{"query": "Time in Oslo?", "calls": [{"name": "get_time", "arguments": {"city": "Oslo"}}]}, '
                '{"query": "what time is it in lima", "calls": [{"name": "get_time", "arguments": {"city": "Lima"}}]}, '
                '{"query": "Time in Rome?", "calls": [{"name": "get_time", "arguments": {"city": 5}}]}, '
                '{"query": "Sing me a song", "calls": []}, {"query": ???}]')


def teach_reply(src_dir, out_dir, prompt: str, reply: str, max_steps: int = 300):
    """Fully fine-tune the tiny FunctionGemma model until it answers the one-message chat `prompt`
    with `reply` (rendered as llama-server renders it: the GGUF carries the same template)."""
    from gguf_helpers import fine_tune_until, supervised_ids
    from transformers import AutoTokenizer

    from calltune.formats import get_format

    chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
    sequence = supervised_ids(AutoTokenizer.from_pretrained(src_dir), get_format("functiongemma"), chat)
    return fine_tune_until(src_dir, out_dir, [sequence], max_steps=max_steps, stop_loss=0.005)


def test_a_real_llama_server_answers_and_its_reply_is_validated_deduplicated_counted(
        llama_server_binary, tiny_gemma_dir, tmp_path):
    from calltune.export.gguf import export_gguf, gguf_name
    from calltune.llama_server import running_llama_server

    gen = gen_block(tmp_path, settings("http://unused/v1"), examples=TIME_EXAMPLES, tools=[TIME_TOOL])
    prompt = build_prompt(TIME_TOOL, [TIME_TOOL], TIME_EXAMPLES[:1], gen["synthetic"])
    taught, loss = teach_reply(tiny_gemma_dir, tmp_path / "taught", prompt, TAUGHT_REPLY)
    assert loss < 0.02, f"the tiny model did not learn the reply (loss {loss:.3f})"
    export_gguf(taught, tmp_path / "gguf", ["f32"])

    with running_llama_server(tmp_path / "gguf" / gguf_name("f32"), threads=1, ctx_size=2048) as server:
        gen["synthetic"]["base_url"] = f"{server}/v1"
        result, out, metrics = run_stage(tmp_path, gen)

    assert result.exit_code == 0, result.output
    assert [(r["query"], r["calls"]) for r in read_jsonl(out)] == [
        ("Time in Oslo?", [{"name": "get_time", "arguments": {"city": "Oslo"}}]), ("Sing me a song", [])]
    stats = json.loads(metrics.read_text())
    counts = {"requested": 4, "received": 4, "kept": 2, "dropped_unparseable": 1, "dropped_invalid": 1,
              "dropped_duplicate": 1}
    assert stats["per_tool"] == {"get_time": counts}
    assert {k: stats[k] for k in counts} == counts and (stats["requests"], stats["retries"]) == (1, 0)
    assert stats["invalid_reasons"] == {"calls[0].arguments.city: 5 is not of type 'string'": 1}
    assert {r["provenance"]["prompt_sha256"] for r in read_jsonl(out)} == {hashlib.sha256(prompt.encode()).hexdigest()}
    assert read_jsonl(out)[0]["provenance"] == {
        "source": "synthetic", "tool": "get_time", "model": "tiny-test", "base_url": gen["synthetic"]["base_url"],
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(), "temperature": 0, "seed": 7}
    assert "reply for get_time:2 [query]: duplicate of" in result.stderr
    assert "reply for get_time:3 [calls[0].arguments.city]: 5 is not of type 'string' (dropped)" in result.stderr


# --- what is sent, and what comes back --------------------------------------------------------------

def test_one_seeded_request_per_tool_carries_the_prompt_and_the_key_only_in_its_header(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with fake_endpoint(reply_of({"query": "Weather in Lima?", "calls": [weather("Lima")]})) as (url, script):
        gen = gen_block(tmp_path, settings(url, seed=None))
        result, out, metrics = run_stage(tmp_path, gen)
    assert result.exit_code == 0, result.output
    weather_request = script.requests[0]
    assert len(script.requests) == 2  # one per tool
    assert weather_request["path"] == "/v1/chat/completions"
    assert weather_request["headers"]["Authorization"] == f"Bearer {SECRET}"
    base_seed = yaml.safe_load((ROOT / "params.yaml").read_text())["base"]["seed"]
    assert [r["body"]["seed"] for r in script.requests] == [base_seed, base_seed + 1]  # seed: null = base.seed
    body = weather_request["body"]
    assert (body["model"], body["temperature"], body["max_tokens"], body["stream"]) == ("tiny-test", 0, 256, False)
    [message] = body["messages"]
    assert message["role"] == "user" and '"name": "get_weather"' in message["content"]
    assert '{"query": "What is the weather in Oslo?"' in message["content"]  # a style hint
    assert "calculator" in message["content"]  # the other tools, so no-call requests fit none of them
    assert SECRET not in out.read_text() + metrics.read_text() + result.output


def test_no_authorization_header_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with fake_endpoint(reply_of()) as (url, script):
        synthesize(gen_block(tmp_path, settings(url)), 0)
    assert all("Authorization" not in r["headers"] for r in script.requests)


def test_invalid_calls_are_dropped_and_counted_with_their_reasons(tmp_path):
    items = [{"query": "Weather in Lima?", "calls": [weather("Lima")]},
             {"query": "Book a flight to Rome", "calls": [{"name": "book_flight", "arguments": {}}]},
             {"query": "Oslo in kelvin", "calls": [weather("Oslo", unit="kelvin")]},
             {"query": "Paris for three days", "calls": [weather("Paris", days="three")]},
             {"query": "Weather please", "calls": [{"name": "get_weather", "arguments": {}}]},
             "just a string",
             {"query": "Sing", "calls": []}]
    with fake_endpoint(reply_of(*items), reply_of()) as (url, _):
        result = synthesize(gen_block(tmp_path, settings(url)), 0)
    assert [r["query"] for r in result.records] == ["Weather in Lima?", "Sing"]
    counts = result.metrics()
    assert (counts["received"], counts["kept"], counts["dropped_invalid"]) == (7, 2, 5)
    assert counts["invalid_reasons"] == {
        "calls[0].arguments.days: 'three' is not of type 'integer'": 1,
        "calls[0].arguments.unit: 'kelvin' is not one of ['celsius', 'fahrenheit']": 1,
        "calls[0].arguments: 'location' is a required property": 1,
        "calls[0].name: unknown tool 'book_flight' (known: calculator, get_weather)": 1,
        "'just a string' is not of type 'object'": 1}
    assert "reply for get_weather:2 [calls[0].name]: unknown tool 'book_flight'" in "\n".join(result.dropped)


def test_duplicates_of_examples_templates_and_the_batch_are_dropped(tmp_path):
    (tmp_path / "templates.yaml").write_text(yaml.safe_dump({"templates": [{
        "name": "t", "patterns": ["Forecast for {city}"], "slots": {"city": ["Quito"]},
        "calls": [{"name": "get_weather", "arguments": {"location": "{city}"}}]}]}))
    items = [{"query": "what is the weather in oslo", "calls": [weather("Oslo")]},  # a hand-written one, normalised
             {"query": "What is the weather in Oslo today?", "calls": [weather("Oslo")]},  # near: Jaccard 6/7
             {"query": "forecast for quito!", "calls": [weather("Quito")]},  # a template expansion
             {"query": "Weather in Paris", "calls": [weather("Paris")]},
             {"query": "weather in Paris?", "calls": [weather("Paris")]}]  # repeats the batch
    with fake_endpoint(reply_of(*items), reply_of({"query": "Weather in Paris.", "calls": [weather("Paris")]})) as (url, _):
        gen = gen_block(tmp_path, settings(url), templates=str(tmp_path / "templates.yaml"))
        result = synthesize(gen, 0)
    assert [r["query"] for r in result.records] == ["Weather in Paris"]
    assert result.per_tool["get_weather"].dropped_duplicate == 4
    assert result.per_tool["calculator"].dropped_duplicate == 1  # across tools too
    log = "\n".join(result.dropped)
    assert f"reply for get_weather:1 [query]: duplicate of {tmp_path / 'examples.jsonl'}:1" in log
    assert f"reply for get_weather:2 [query]: near-duplicate of {tmp_path / 'examples.jsonl'}:1" in log
    assert f"reply for get_weather:3 [query]: duplicate of {tmp_path / 'templates.yaml'}" in log
    assert "reply for get_weather:5 [query]: duplicate of reply for get_weather:4" in log
    assert "reply for calculator:1 [query]: duplicate of reply for get_weather:4" in log


@pytest.mark.parametrize("reply,items,unparseable", [
    ('[{"query": "a", "calls": []}]', 1, 0),
    ('Sure! Here they are:\n```json\n[{"query": "a", "calls": []}, {"query": "b", "calls": []}]\n```\nEnjoy.', 2, 0),
    ('{"examples": [{"query": "a", "calls": []}]}', 1, 0),  # a JSON object wrapping the list
    ('[{"query": "a", "calls": []}, {"query": "b", "calls": [{"name": "x", "argu', 1, 1),  # cut by max_tokens
    ('[{"query": "a", "calls": []}, {query: b}, {"query": "c", "calls": []}]<end_of_turn>', 2, 1),
    ("I cannot help with that.", 0, 1),
    ("", 0, 1),
])
def test_replies_are_read_leniently_item_by_item(reply, items, unparseable):
    parsed, broken = parse_reply(reply)
    assert (len(parsed), broken) == (items, unparseable)


def test_an_empty_message_content_is_an_unreadable_reply_not_an_error(tmp_path):
    with fake_endpoint(completion(None)) as (url, _):
        counts = synthesize(gen_block(tmp_path, settings(url)), 0).metrics()
    assert (counts["received"], counts["dropped_unparseable"], counts["requested"]) == (0, 2, 8)


# --- the endpoint failing ------------------------------------------------------------------------------

def test_retry_after_is_honoured_on_http_429(tmp_path):
    busy = {"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": {"message": "slow down"}}}
    with fake_endpoint(busy, reply_of({"query": "Weather in Lima?", "calls": [weather("Lima")]})) as (url, script):
        started = time.monotonic()
        result = synthesize(gen_block(tmp_path, settings(url)), 0, backoff_s=30)  # Retry-After wins over backoff
        elapsed = time.monotonic() - started
    assert 1 <= elapsed < 10
    assert (result.requests, result.retries, len(script.requests)) == (3, 1, 3)
    assert [r["query"] for r in result.records] == ["Weather in Lima?"]


def test_a_server_error_is_retried_with_backoff(tmp_path):
    error = {"status": 500, "body": b"boom"}
    with fake_endpoint(error, error, reply_of(), reply_of()) as (url, _):
        result = synthesize(gen_block(tmp_path, settings(url, max_retries=2)), 0, backoff_s=0.01)
    assert (result.requests, result.retries) == (4, 2)


@pytest.mark.parametrize("answer,message", [
    ({"status": 429, "body": b""}, "rate-limited (HTTP 429) after 2 tries: too many requests"),
    ({"status": 503, "body": b"loading model"}, "failed with HTTP 503 after 2 tries: loading model"),
    ({"status": 200, "delay": 1.0, "body": reply_of()}, "timed out after 2 tries: no reply within timeout_s=0.2 s"),
])
def test_retries_run_out_with_a_clear_error(tmp_path, answer, message):
    with fake_endpoint(answer) as (url, script), pytest.raises(InputError) as excinfo:
        synthesize(gen_block(tmp_path, settings(url, timeout_s=0.2)), 0, backoff_s=0.01)
    assert str(excinfo.value) == f"endpoint {url} {message}"
    assert len(script.requests) == 2


def test_a_closed_port_is_unreachable(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(InputError, match=rf"^endpoint {url} unreachable after 3 tries: connection refused$"):
        synthesize(gen_block(tmp_path, settings(url, max_retries=2)), 0, backoff_s=0.01)


@pytest.mark.parametrize("answer,message", [
    ({"status": 400, "body": {"error": {"message": f"model not found (key {SECRET})"}}},
     r"rejected the request \(HTTP 400\): .*model not found \(key \*\*\*\)"),
    ({"status": 401, "body": {"error": f"bad key {SECRET}"}},
     rf"refused the request \(HTTP 401\): check the API key in the environment variable {KEY_ENV} \(it is set\)"),
    ({"status": 200, "body": f"<html>{SECRET}</html>".encode()}, "answered with something that is not JSON"),
    ({"status": 200, "body": {"object": "list", "data": []}}, r"answered without choices\[0\]\.message"),
])
def test_requests_the_endpoint_rejects_or_malformed_answers_fail_at_once(tmp_path, monkeypatch, answer, message):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with fake_endpoint(answer) as (url, script), pytest.raises(InputError, match=message) as excinfo:
        synthesize(gen_block(tmp_path, settings(url, max_retries=3)), 0, backoff_s=0.01)
    assert len(script.requests) == 1 and SECRET not in str(excinfo.value)


def test_a_failure_after_some_tools_writes_nothing(tmp_path):
    """The first tool is answered, the second fails: no partial file, no metrics, exit 2."""
    with fake_endpoint(reply_of({"query": "Weather in Lima?", "calls": [weather("Lima")]}),
                       {"status": 500, "body": b"out of memory"}) as (url, _):
        result, out, metrics = run_stage(tmp_path, gen_block(tmp_path, settings(url, max_retries=0)))
    assert result.exit_code == 2
    assert f"error: endpoint {url} failed with HTTP 500 after 1 try: out of memory" in result.stderr
    assert not out.parent.exists() and not metrics.parent.exists()


def test_the_stage_writes_nothing_when_the_endpoint_is_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result, out, metrics = run_stage(tmp_path, gen_block(tmp_path, settings(url, max_retries=0)))
    assert result.exit_code == 2 and f"error: endpoint {url} unreachable after 1 try" in result.stderr
    assert not out.parent.exists() and not metrics.parent.exists()


def test_disabled_writes_an_empty_file_and_zero_metrics_without_a_request(tmp_path):
    with fake_endpoint(reply_of()) as (url, script):
        result, out, metrics = run_stage(tmp_path, gen_block(tmp_path, settings(url, enabled=False)))
    assert result.exit_code == 0, result.output
    assert script.requests == [] and out.read_text() == ""
    stats = json.loads(metrics.read_text())
    assert stats["per_tool"] == {} and all(v == 0 for k, v in stats.items() if k not in ("per_tool", "invalid_reasons"))


# --- into the dataset ----------------------------------------------------------------------------------

def test_generate_merges_the_synthetic_examples_as_one_more_source(tmp_path):
    synthetic = write_jsonl(tmp_path / "synthetic.jsonl", [
        {"query": "Weather in Lima?", "calls": [weather("Lima")], "provenance": {"source": "synthetic", "seed": 1}},
        {"query": "tell me a joke!", "calls": [], "provenance": {"source": "synthetic"}}])
    gen = gen_block(tmp_path, settings("http://unused/v1"))
    without = generate(gen, 0)
    merged = generate(gen, 0, synthetic)
    assert "synthetic" not in without.sources
    assert merged.sources == {"examples": 2, "templates": 0, "imports": 0, "synthetic": 1}
    assert merged.records[:2] == without.records  # the other sources come first, unchanged
    assert merged.records[2]["meta"]["source"] == f"{synthetic}:1"
    assert "provenance" not in json.dumps(merged.records)  # the dataset keeps its schema
    assert [d.describe() for d in merged.duplicates] == [
        f"{synthetic}:2 [query]: duplicate query (first at {tmp_path / 'examples.jsonl'}:2)"]


def test_generate_checks_synthetic_examples_like_the_others(tmp_path):
    gen = gen_block(tmp_path, settings("http://unused/v1"))
    with pytest.raises(InputError, match="run the synthesize stage first"):
        generate(gen, 0, tmp_path / "missing.jsonl")
    bad = write_jsonl(tmp_path / "synthetic.jsonl", [{"query": "Oslo in kelvin", "calls": [weather("Oslo", unit="kelvin")]}])
    with pytest.raises(InputError, match=r"synthetic\.jsonl:1 \[calls\[0\]\.arguments\.unit\]"):
        generate(gen, 0, bad)


def test_the_generate_stage_reads_the_synthetic_file_only_when_enabled(tmp_path, tiny_gemma_dir):
    generate_stage = stage_main("generate")
    synthetic = write_jsonl(tmp_path / "synthetic.jsonl", [{"query": "Weather in Lima?", "calls": [weather("Lima")]}])

    def stats(enabled: bool) -> dict:
        params = repo_params(tmp_path, generate=gen_block(tmp_path, settings("http://unused/v1", enabled=enabled)),
                             model={"format": "auto"})
        metrics = tmp_path / f"data-{enabled}.json"
        result = CliRunner().invoke(generate_stage, [
            "--params", str(params), "--base-model", str(tiny_gemma_dir), "--synthetic", str(synthetic),
            "--out", str(tmp_path / "dataset.jsonl"), "--metrics", str(metrics)])
        assert result.exit_code == 0, result.output
        return json.loads(metrics.read_text())

    enabled, disabled = stats(True), stats(False)
    assert (enabled["n_examples"], enabled["from_synthetic"]) == (3, 1)
    assert disabled["n_examples"] == 2 and "from_synthetic" not in disabled


# --- params ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,needle", [
    ("api_key", "sk-abc", r"generate\.synthetic\.api_key\]: unknown key"),
    ("max_retries", "3", r"generate\.synthetic\.max_retries"),
    ("api_key_env", "sk-abc-123", r"generate\.synthetic\.api_key_env"),  # a key pasted where its variable's name goes
    ("base_url", "http://user:secret@host/v1", r"generate\.synthetic\.base_url"),
    ("temperature", -1, r"generate\.synthetic\.temperature"),
])
def test_synthetic_params_are_checked_like_the_rest(key, value, needle):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["generate"]["synthetic"]["enabled"] is False  # off by default
    params["generate"]["synthetic"][key] = value
    with pytest.raises(InputError, match=needle):
        validate_params(params)
