"""calltune.serve: the taught tiny model's GGUF served behind an OpenAI-compatible endpoint by both
llama.cpp engines (llama-server as a child process, and llama.cpp in-process), called with the real
`openai` client (a tools list in, tool_calls out, streaming too), and the request errors a client
can make. (Here beside the GGUF fixtures it serves.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from gguf_helpers import SYSTEM, TOOLS
from http_helpers import serving_in_thread

from calltune.errors import InputError
from calltune.export.gguf import gguf_name
from calltune.llama_server import free_port
from calltune.serve import (
    ChatService,
    LlamaServerBackend,
    make_server,
    open_service,
    pick_engine,
    to_contract_messages,
)

openai = pytest.importorskip("openai")

TOKYO = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the weather in Tokyo?"}]


@pytest.fixture(scope="module", params=["llama-server", "llama-cpp"])
def service(request, tool_ggufs):
    if request.param == "llama-server":
        request.getfixturevalue("llama_server_binary")
    with open_service(tool_ggufs[1] / gguf_name("q8_0"), request.param, threads=2, n_ctx=2048) as service:
        assert service.engine_name == request.param
        yield service


@contextmanager
def serving(service):
    """The server on 127.0.0.1, a free port, in a thread; always shut down."""
    with serving_in_thread(make_server(service, "127.0.0.1", 0)) as base:
        yield base


def client(base: str):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", timeout=60, max_retries=0)


def test_the_openai_client_gets_tool_calls_back(service):
    with serving(service) as base:
        reply = client(base).chat.completions.create(model=service.model_name, messages=TOKYO, tools=TOOLS,
                                                     max_tokens=48, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Tokyo"}
    assert reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens <= 48


def test_streaming_carries_the_same_call(service):
    with serving(service) as base:
        stream = client(base).chat.completions.create(model=service.model_name, messages=TOKYO, tools=TOOLS,
                                                      max_tokens=48, stream=True)
        chunks = list(stream)
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [("get_weather", {"location": "Tokyo"})]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_result_turn_is_rendered_with_the_calls_name(service):
    """OpenAI tool messages name the call by id; the FunctionGemma render needs the function name."""
    messages = TOKYO + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Tokyo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'}]
    with serving(service) as base:
        reply = client(base).chat.completions.create(model=service.model_name, messages=messages, tools=TOOLS,
                                                     max_tokens=8)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    prompt = service.fmt.render(to_contract_messages(messages), TOOLS, add_generation_prompt=True)
    assert "<start_function_response>response:get_weather{temperature:21}<end_function_response>" in prompt


def test_tool_messages_get_names_by_id_or_position():
    calls = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x": 1}'}}]
    messages = to_contract_messages([
        {"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "b", "content": "[1, 2]"},
        {"role": "tool", "content": "plain text"}])  # no id: the next unanswered position
    assert messages[1]["tool_calls"][1] == {"name": "g", "arguments": {"x": 1}}
    assert [(m["name"], m["content"]) for m in messages[2:]] == [("g", [1, 2]), ("g", "plain text")]


def test_a_tool_message_with_no_earlier_call_is_an_input_error():
    with pytest.raises(InputError, match="answers no earlier tool call"):
        to_contract_messages([{"role": "user", "content": "hi"}, {"role": "tool", "content": "1"}])


def post(base: str, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/v1/chat/completions", b"{not json", 400, "not JSON"),
    ("/v1/chat/completions", b"[]", 400, "JSON object"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "non-empty list"),
    ("/v1/chat/completions", json.dumps({"messages": TOKYO, "max_tokens": 0}).encode(), 400, "max_tokens"),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "tool", "content": "x"}]}).encode(), 400, "no earlier"),
    ("/v1/chat/completions", json.dumps({"messages": TOKYO, "tools": TOOLS, "tool_choice": "often"}).encode(), 400,
     "tool_choice"),
    ("/v1/chat/completions", json.dumps({"messages": TOKYO, "tools": TOOLS, "tool_choice": {
        "type": "function", "function": {"name": "get_time"}}}).encode(), 400, "not among"),
    ("/v1/completions", b"{}", 404, "no route"),
])
def test_bad_requests_get_openai_style_errors(service, path, body, status, message):
    with serving(service) as base:
        code, payload = post(base, path, body)
    assert code == status
    assert message in payload["error"]["message"] and payload["error"]["type"] == "invalid_request_error"


def test_tool_choice_is_honoured_by_the_constraint(service):
    """Replies are constrained by default: "none" keeps the taught model from its call, a named
    function makes it call that one (with the arguments its schema requires)."""
    assert service.constrain
    with serving(service) as base:
        ask = lambda choice: client(base).chat.completions.create(  # noqa: E731
            model=service.model_name, messages=TOKYO, tools=TOOLS, max_tokens=48, tool_choice=choice).choices[0]
        auto, none = ask("auto"), ask("none")
        named = ask({"type": "function", "function": {"name": "send_email"}})
    assert [c.function.name for c in auto.message.tool_calls] == ["get_weather"]
    assert none.finish_reason != "tool_calls" and not none.message.tool_calls
    assert "<start_function_call>" not in (none.message.content or "")
    assert named.finish_reason == "tool_calls"
    assert [c.function.name for c in named.message.tool_calls] == ["send_email"]
    assert set(json.loads(named.message.tool_calls[0].function.arguments)) == {"to"}


@pytest.mark.parametrize(("max_tokens", "finish"), [(14, "length"), (18, "tool_calls"), (36, "tool_calls")])
def test_llama_server_wraps_up_like_the_in_process_engine(tool_ggufs, llama_server_binary, max_tokens, finish):
    """Under a tight budget the constrained reply is closed in its last steps (constrain.wrapup), not cut
    off: llama-server's backend finishes it exactly as llama.cpp in-process does (14 tokens are too
    few for a whole call of this model: both stop one token short of <end_function_call>)."""
    request = {"messages": TOKYO, "tools": TOOLS, "max_tokens": max_tokens,
               "tool_choice": {"type": "function", "function": {"name": "send_email"}}}
    gguf = tool_ggufs[1] / gguf_name("q8_0")
    replies = {}
    for engine in ("llama-server", "llama-cpp"):
        with open_service(gguf, engine, threads=2, n_ctx=2048) as service:
            reply = service.reply(request)
        replies[engine] = (reply.content, [c["function"] for c in reply.tool_calls], reply.finish_reason,
                           reply.completion_tokens)
    assert replies["llama-server"] == replies["llama-cpp"]
    content, calls, finish_reason, completion_tokens = replies["llama-server"]
    assert finish_reason == finish and completion_tokens <= max_tokens
    if finish == "tool_calls":
        assert [c["name"] for c in calls] == ["send_email"] and "to" in json.loads(calls[0]["arguments"])


def test_health_and_models(service):
    with serving(service) as base:
        with urllib.request.urlopen(f"{base}/health", timeout=10) as r:
            assert json.loads(r.read()) == {"status": "ok"}
        assert [m.id for m in client(base).models.list().data] == [service.model_name]


def test_engines_serve_what_they_can(tmp_path, tool_ggufs):
    gguf = tool_ggufs[1] / gguf_name("q8_0")
    assert pick_engine(gguf, "llama-cpp") == "llama-cpp"
    with pytest.raises(InputError, match="not a .gguf file or a model directory"):
        pick_engine(tmp_path, "auto")
    with pytest.raises(InputError, match="GGUF file not found"):
        pick_engine(tmp_path / "missing.gguf", "auto")
    with pytest.raises(InputError, match="serves a model directory"):
        pick_engine(gguf, "torch")
    (tmp_path / "config.json").write_text("{}")
    assert pick_engine(tmp_path, "auto") == "torch"
    with pytest.raises(InputError, match="serves a .gguf file"):
        pick_engine(tmp_path, "llama-server")


def test_an_engine_that_fails_is_an_http_500(service):
    down = ChatService(LlamaServerBackend(f"http://127.0.0.1:{free_port()}", service.fmt, timeout=5),
                       service.fmt, "down", "llama-server")
    with serving(down) as base:
        code, payload = post(base, "/v1/chat/completions", json.dumps({"messages": TOKYO}).encode())
    assert code == 500 and payload["error"]["type"] == "server_error"
    assert "did not answer" in payload["error"]["message"]
