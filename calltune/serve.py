"""Serve a tuned model behind an OpenAI-compatible `/v1/chat/completions` with `tools`.

    python -m calltune.serve models/gguf_quantized/model-q4_K_M.gguf        # llama.cpp
    python -m calltune.serve models/fused                                   # PyTorch

The request is rendered by calltune's chat format (the same text the model was trained and
evaluated on), generated greedily by the artifact's engine (llama.cpp for a .gguf, PyTorch for a
model directory), and the model's calls are parsed into OpenAI `tool_calls` (arguments as a JSON
string, `finish_reason: "tool_calls"`). `stream: true` answers with server-sent events: the reply
is generated first, then sent as OpenAI chunks (role, content or tool_calls, finish_reason, [DONE]).
Binds 127.0.0.1 unless told otherwise; one generation at a time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

from calltune.errors import InputError

DEFAULT_MAX_TOKENS = 256


def to_contract_messages(messages: list[dict]) -> list[dict]:
    """A request's OpenAI chat messages in calltune's form, read as the OpenAI importer reads them;
    a tool result without a `tool_call_id` answers the next unanswered call of the last turn."""
    from calltune.data.importers.openai import contract_messages

    if not isinstance(messages, list) or not messages:
        raise InputError("messages must be a non-empty list", field="messages")
    return contract_messages(messages, by_position=True)


@dataclass
class Reply:
    content: str | None
    tool_calls: list[dict]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class ChatService:
    """Render -> generate -> parse for one loaded artifact; thread-safe (one generation at a time)."""

    def __init__(self, engine, fmt, model_name: str, count_tokens=None):
        self.engine, self.fmt, self.model_name = engine, fmt, model_name
        self.count_tokens = count_tokens or (lambda text: 0)
        self._lock = threading.Lock()

    def reply(self, request: dict) -> Reply:
        messages = to_contract_messages(request.get("messages"))
        tools = request.get("tools") or []
        max_tokens = next((request[k] for k in ("max_completion_tokens", "max_tokens") if request.get(k) is not None),
                          DEFAULT_MAX_TOKENS)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InputError("max_tokens must be a positive integer", field="max_tokens")
        prompt = self.fmt.render(messages, tools, add_generation_prompt=True)
        with self._lock:
            text, n_tokens = self.engine.generate(prompt, max_tokens, self.fmt.stop_strings)
        parsed = self.fmt.parse(text)
        calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                 for c in parsed.calls] if tools else []
        content = (parsed.content if calls else text).strip() or None
        finish = "tool_calls" if calls else "length" if n_tokens >= max_tokens else "stop"
        return Reply(content, calls, finish, self.count_tokens(prompt), n_tokens)

    def completion(self, reply: Reply) -> dict:
        message = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return {**self._envelope("chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                          "total_tokens": reply.prompt_tokens + reply.completion_tokens}}

    def chunks(self, reply: Reply) -> list[dict]:
        """The reply as OpenAI stream chunks: role, then content or tool calls, then the finish."""
        envelope = self._envelope("chat.completion.chunk")
        deltas = [{"role": "assistant", "content": ""}]
        if reply.content:
            deltas.append({"content": reply.content})
        if reply.tool_calls:
            deltas.append({"tool_calls": [{"index": i, **call} for i, call in enumerate(reply.tool_calls)]})
        chunks = [{**envelope, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({**envelope, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
        return chunks

    def _envelope(self, kind: str) -> dict:
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
                "model": self.model_name}


def make_handler(service: ChatService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/health":
                return self._json(HTTPStatus.OK, {"status": "ok"})
            if self.path == "/v1/models":
                return self._json(HTTPStatus.OK, {"object": "list", "data": [
                    {"id": service.model_name, "object": "model", "owned_by": "calltune"}]})
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                return self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")
            try:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"null")
                if not isinstance(request, dict):
                    raise InputError("the body must be a JSON object")
                reply = service.reply(request)
            except json.JSONDecodeError as e:
                return self._error(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {e.msg}")
            except InputError as e:
                return self._error(HTTPStatus.BAD_REQUEST, str(e))
            if request.get("stream"):
                return self._stream(service.chunks(reply))
            self._json(HTTPStatus.OK, service.completion(reply))

        def _stream(self, chunks: list[dict]) -> None:
            body = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            self._send(HTTPStatus.OK, body.encode("utf-8"), "text/event-stream")

        def _json(self, status, payload: dict) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

        def _error(self, status, message: str) -> None:
            self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": None}})

        def _send(self, status, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # quiet by default; click's --verbose turns it on
            if getattr(self.server, "verbose", False):
                super().log_message(fmt, *args)

    return Handler


def load_service(model: Path, fmt_name: str = "auto", threads: int | None = None, n_ctx: int = 4096) -> ChatService:
    """A ChatService for a .gguf (llama.cpp) or an HF model directory (PyTorch)."""
    from calltune.formats import get_format

    if model.suffix == ".gguf":
        from calltune.export.gguf_runtime import LlamaCppEngine

        if not model.is_file():
            raise InputError("GGUF file not found", path=model)
        engine = LlamaCppEngine(model, threads=threads, n_ctx=n_ctx)
        if fmt_name == "auto":  # FunctionGemma GGUFs carry its call marker as one token
            fmt_name = "functiongemma" if len(engine.tokenize("<start_function_call>")) == 1 else "generic"
        if fmt_name != "functiongemma":
            raise InputError("serving a GGUF supports the functiongemma format; serve the model directory "
                             "for other formats", path=model)
        return ChatService(engine, get_format("functiongemma"), model.stem, lambda t: len(engine.tokenize(t)))
    if not (model / "config.json").is_file():
        raise InputError("not a .gguf file or a model directory with config.json", path=model)
    from calltune.evaluate.engines import TorchEngine

    engine = TorchEngine(model, threads=threads)
    fmt = get_format(fmt_name, tokenizer=engine.tokenizer)
    return ChatService(engine, fmt, model.name, lambda t: len(engine.tokenizer(t, add_special_tokens=False)["input_ids"]))


def make_server(service: ChatService, host: str = "127.0.0.1", port: int = 8080, verbose: bool = False):
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.verbose = verbose
    return server


@click.command(help=__doc__)
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 exposes it).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--format", "fmt_name", default="auto", show_default=True,
              type=click.Choice(["auto", "functiongemma", "generic"]))
@click.option("--threads", default=None, type=int, help="CPU threads for the engine (default: all).")
@click.option("--ctx-size", default=4096, show_default=True, type=int, help="llama.cpp context length.")
@click.option("--verbose", is_flag=True, help="Log every request.")
def main(model, host, port, fmt_name, threads, ctx_size, verbose):
    try:
        service = load_service(model, fmt_name, threads, ctx_size)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    server = make_server(service, host, port, verbose)
    click.echo(f"serving {service.model_name} ({service.fmt.name}) on http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
