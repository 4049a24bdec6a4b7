"""Serve a tuned model behind an OpenAI-compatible `/v1/chat/completions` with `tools`.

    python -m calltune.serve models/gguf_quantized/model-q4_K_M.gguf        # llama.cpp (llama-server)
    python -m calltune.serve models/fused                                   # PyTorch

Engines: a .gguf runs in llama.cpp's own server (`llama-server --jinja --special`, a child process
on a private 127.0.0.1 port) when it is installed, else in llama.cpp in-process (engines.libllama);
a model directory runs in PyTorch. With llama-server the GGUF's own chat template renders the
request; otherwise calltune's chat format does (the same text: the template is calltune's). Either
way the model's calls are parsed by calltune's format into OpenAI `tool_calls` (arguments as a JSON
string, `finish_reason: "tool_calls"`): llama.cpp has no FunctionGemma call parser. `stream: true`
answers with server-sent events: the reply is generated first, then sent as OpenAI chunks (role,
content or tool_calls, finish_reason, [DONE]). Greedy; binds 127.0.0.1 unless told otherwise; one
generation at a time.

Replies are constrained by default (--no-constrain turns it off): a request with tools is decoded
under its call grammar (calltune.constrain), so every call names a declared tool with arguments
its schema allows, and `tool_choice` is honoured: "auto" (calls or text), "none" (text only),
"required" (calls only) or {"type": "function", "function": {"name": N}} (calls of N only).
llama-server gets the grammar as GBNF in its `grammar` field; the in-process engines mask tokens.
In a budget's last steps every engine closes what is open (calltune.constrain.wrapup), so a
max_tokens that leaves room for the call's closing tokens returns the call, not a cut-off one.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import numpy as np

from calltune.errors import InputError
from calltune.engines.base import cut_at_stop

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


@dataclass
class Completion:
    text: str  # the model's raw reply, control tokens kept
    prompt_tokens: int
    completion_tokens: int


class RenderingBackend:
    """An in-process engine (llama.cpp or PyTorch) generating from calltune's rendered prompt."""

    def __init__(self, engine, fmt, count_tokens):
        self.engine, self.fmt, self.count_tokens = engine, fmt, count_tokens

    def complete(self, prompt: str, messages: list[dict], tools: list[dict], max_tokens: int,
                 constraint=None) -> Completion:
        extra = {} if constraint is None else {"constraint": constraint}
        text, n_tokens = self.engine.generate(prompt, max_tokens, self.fmt.stop_strings, **extra)
        return Completion(text, self.count_tokens(prompt), n_tokens)


class LlamaServerBackend:
    """llama.cpp's llama-server (started with --jinja --special): the GGUF's own chat template
    renders the request (the same text as calltune's prompt, which is not sent) and the raw reply
    comes back with its control tokens, cut before the first stop string like the engines' text.

    `tool_choice: "none"` keeps llama-server from parsing calls itself: it has no FunctionGemma
    parser, and the one it derives from the template rejects valid calls (HTTP 500).

    Under a constraint the budget's last wrap_up_tokens steps close what is open, as in the
    in-process engines (calltune.constrain.wrapup): llama-server generates under the grammar up to
    the wrap-up; if the reply is not finished by then, calltune continues it token by token with
    the grammar sampler on the GGUF's vocabulary, taking the grammar's closers where allowed and
    otherwise the best allowed of llama-server's top next tokens (`/completion`, `n_probs`)."""

    TOP_TOKENS = 64  # next-token candidates asked of llama-server in the wrap-up

    def __init__(self, base_url: str, fmt, timeout: float = 600, vocabulary=None):
        self.base_url, self.fmt, self.timeout = base_url, fmt, timeout
        self.vocabulary = vocabulary  # the GGUF's libllama.Model (vocab only), for the grammar's tokens

    def complete(self, prompt: str, messages: list[dict], tools: list[dict], max_tokens: int,
                 constraint=None) -> Completion:
        from calltune.constrain.wrapup import wrap_up_tokens
        from calltune.formats.generic import template_messages

        wrap_up = wrap_up_tokens(max_tokens) if constraint is not None and self.vocabulary is not None else 0
        body = {"messages": template_messages(messages), "max_tokens": max_tokens - wrap_up, "temperature": 0,
                "stop": self.fmt.stop_strings, "cache_prompt": True}
        if tools:
            body |= {"tools": tools, "tool_choice": "none"}
        if constraint is not None:
            vocab = self.vocabulary
            ends, tokens = constraint.vocabulary_tokens(vocab.tokenize, vocab.is_end) if vocab else ((), ())
            body["grammar"] = constraint.gbnf(ends, tokens)
        reply = post_json(f"{self.base_url}/v1/chat/completions", body, self.timeout)
        usage = reply.get("usage") or {}
        choice = reply["choices"][0]
        text = cut_at_stop(choice["message"].get("content") or "", self.fmt.stop_strings)
        n_tokens = usage.get("completion_tokens", 0)
        if wrap_up and choice.get("finish_reason") == "length":
            closing = self.wrap_up(prompt, text, constraint, wrap_up)
            text = cut_at_stop(text + self._decode(closing), self.fmt.stop_strings)
            n_tokens += len(closing)
        return Completion(text, usage.get("prompt_tokens", 0), n_tokens)

    def wrap_up(self, prompt: str, text: str, constraint, steps: int) -> list[int]:
        """Up to `steps` token ids that close the constrained reply `text` of `prompt`."""
        from calltune.engines.llama_cpp import grammar_sampler

        vocab = self.vocabulary
        sampler = grammar_sampler(vocab, constraint)  # the in-process engine's, on the vocabulary alone
        so_far = vocab.tokenize(text, special=True)
        for token in so_far:  # the reply's text as tokens; the grammar matches text, so any tokenization fits
            if not sampler.allowed([token])[0]:
                return []  # not the text llama-server's grammar produced: leave the reply as it is
            sampler.accept(token)
        context, out = vocab.tokenize(prompt, special=True) + so_far, []
        while len(out) < steps:
            token = sampler.best(self.next_logits(context + out), wrap_up=True)  # a closer where one is allowed
            if token is None:
                break
            sampler.accept(token)
            out.append(token)
            if vocab.is_end(token) or any(s in self._decode(out) for s in self.fmt.stop_strings):
                break
        return out

    def next_logits(self, ids: list[int]) -> np.ndarray:
        """Scores of the next token after `ids` for llama-server's top candidates (their log-probabilities,
        which order tokens as the logits do), very low for every other token.

        When the best next token ends generation, llama-server answers without probabilities: then
        the end tokens score highest and the others come from a second request that excludes them
        (`ignore_eos`), in the same order the logits give them."""
        logits = np.full(self.vocabulary.n_vocab, -1e9, dtype=np.float32)
        candidates = self._top(ids, ignore_eos=False)
        if candidates is None:
            candidates = self._top(ids, ignore_eos=True) or []
            logits[self.vocabulary.end_ids] = 1.0  # above every log-probability
        for candidate in candidates:
            logits[candidate["id"]] = candidate["logprob"]
        return logits

    def _top(self, ids: list[int], ignore_eos: bool) -> list[dict] | None:
        reply = post_json(f"{self.base_url}/completion",
                          {"prompt": ids, "n_predict": 1, "n_probs": self.TOP_TOKENS, "temperature": 0,
                           "cache_prompt": True, "samplers": [], "ignore_eos": ignore_eos}, self.timeout)
        probabilities = reply.get("completion_probabilities") or []
        return probabilities[0]["top_logprobs"] if probabilities else None

    def _decode(self, ids: list[int]) -> str:
        return self.vocabulary.detokenize(ids, special=True).decode("utf-8", errors="replace")


def post_json(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise EngineError(f"llama-server answered HTTP {e.code}: {e.read().decode(errors='replace')[:500]}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise EngineError(f"llama-server at {url} did not answer: {e}") from None


class EngineError(RuntimeError):
    """The engine failed on a valid request (HTTP 500 to the client)."""


class ChatService:
    """Parse the request -> generate with the backend -> parse the calls; one generation at a time."""

    def __init__(self, backend, fmt, model_name: str, engine_name: str, constrain: bool = True):
        self.backend, self.fmt, self.model_name, self.engine_name = backend, fmt, model_name, engine_name
        self.constrain = constrain
        self._lock = threading.Lock()

    def reply(self, request: dict) -> Reply:
        messages = to_contract_messages(request.get("messages"))
        tools = request.get("tools") or []
        max_tokens = next((request[k] for k in ("max_completion_tokens", "max_tokens") if request.get(k) is not None),
                          DEFAULT_MAX_TOKENS)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InputError("max_tokens must be a positive integer", field="max_tokens")
        prompt = self.fmt.render(messages, tools, add_generation_prompt=True)  # bad messages or tools: 400
        constraint = self.constraint(tools, request.get("tool_choice"))
        with self._lock:
            done = self.backend.complete(prompt, messages, tools, max_tokens,
                                         **({} if constraint is None else {"constraint": constraint}))
        parsed = self.fmt.parse(done.text)
        calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                 for c in parsed.calls] if tools and request.get("tool_choice") != "none" else []
        content = (parsed.content if calls else done.text).strip() or None
        finish = "tool_calls" if calls else "length" if done.completion_tokens >= max_tokens else "stop"
        return Reply(content, calls, finish, done.prompt_tokens, done.completion_tokens)

    def constraint(self, tools: list[dict], tool_choice):
        """The request's call grammar (None when constraining is off or the request has no tools);
        a bad tool_choice is an InputError (HTTP 400) either way."""
        from calltune.constrain import Constraint
        from calltune.constrain.calls import chosen_tools

        chosen_tools(tools, tool_choice)
        if not self.constrain or not tools:
            return None
        return Constraint.for_request(self.fmt, tools, tool_choice)

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
            except EngineError as e:
                return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(e), "server_error")
            if request.get("stream"):
                return self._stream(service.chunks(reply))
            self._json(HTTPStatus.OK, service.completion(reply))

        def _stream(self, chunks: list[dict]) -> None:
            body = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            self._send(HTTPStatus.OK, body.encode("utf-8"), "text/event-stream")

        def _json(self, status, payload: dict) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

        def _error(self, status, message: str, kind: str = "invalid_request_error") -> None:
            self._json(status, {"error": {"message": message, "type": kind, "code": None}})

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


ENGINES = ("auto", "llama-server", "llama-cpp", "torch")


def pick_engine(model: Path, engine: str) -> str:
    """auto: llama-server for a .gguf when it is installed, else llama.cpp in-process; torch for a directory."""
    from calltune.llama_server import llama_server_available

    if model.suffix == ".gguf":
        if not model.is_file():
            raise InputError("GGUF file not found", path=model)
        if engine == "torch":
            raise InputError("the torch engine serves a model directory, not a .gguf", path=model)
        if engine == "auto":
            return "llama-server" if llama_server_available() else "llama-cpp"
        return engine
    if not (model / "config.json").is_file():
        raise InputError("not a .gguf file or a model directory with config.json", path=model)
    if engine not in ("auto", "torch"):
        raise InputError(f"the {engine} engine serves a .gguf file; serve this directory with torch", path=model)
    return "torch"


def gguf_format(model: Path, fmt_name: str, tokenize) -> str:
    if fmt_name == "auto":  # FunctionGemma GGUFs carry its call marker as one token
        fmt_name = "functiongemma" if len(tokenize("<start_function_call>")) == 1 else "generic"
    if fmt_name != "functiongemma":
        raise InputError("serving a GGUF supports the functiongemma format; serve the model directory "
                         "for other formats", path=model)
    return fmt_name


def gguf_vocabulary(model: Path):
    """The GGUF's vocabulary alone (no weights loaded): a libllama.Model with tokenize and is_end."""
    from calltune.engines.libllama import Model

    return Model(model, vocab_only=True)


@contextmanager
def open_service(model: Path, engine: str = "auto", fmt_name: str = "auto", threads: int | None = None,
                 n_ctx: int = 4096, constrain: bool = True):
    """Yield a ChatService for `model` on the chosen engine; a llama-server child is stopped on exit.
    `constrain`: decode requests with tools under their call grammar."""
    from calltune.formats import get_format

    engine = pick_engine(Path(model), engine)
    if engine == "torch":
        from calltune.engines.torch_engine import TorchEngine

        torch_engine = TorchEngine(model, threads=threads)
        fmt = get_format(fmt_name, tokenizer=torch_engine.tokenizer)
        count = lambda t: len(torch_engine.tokenizer(t, add_special_tokens=False)["input_ids"])
        yield ChatService(RenderingBackend(torch_engine, fmt, count), fmt, Path(model).name, engine, constrain)
        return
    from calltune.engines.llama_cpp import LlamaCppEngine

    if engine == "llama-cpp":
        llama = LlamaCppEngine(model, threads=threads, n_ctx=n_ctx)
        fmt = get_format(gguf_format(model, fmt_name, llama.tokenize))
        yield ChatService(RenderingBackend(llama, fmt, lambda t: len(llama.tokenize(t))), fmt, model.stem, engine,
                          constrain)
        return
    from calltune.llama_server import running_llama_server

    vocabulary = gguf_vocabulary(model)
    fmt = get_format(gguf_format(model, fmt_name, vocabulary.tokenize))
    with running_llama_server(model, threads=threads or os.cpu_count() or 1, ctx_size=n_ctx) as base_url:
        yield ChatService(LlamaServerBackend(base_url, fmt, vocabulary=vocabulary), fmt, model.stem, engine,
                          constrain)


def make_server(service: ChatService, host: str = "127.0.0.1", port: int = 8080, verbose: bool = False):
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.verbose = verbose
    return server


@click.command(help=__doc__)
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--engine", default="auto", show_default=True, type=click.Choice(ENGINES),
              help="auto: llama-server for a .gguf when installed, else llama-cpp (in-process); torch for a directory.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 exposes it).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--format", "fmt_name", default="auto", show_default=True,
              type=click.Choice(["auto", "functiongemma", "generic"]))
@click.option("--threads", default=None, type=int, help="CPU threads for the engine (default: all).")
@click.option("--ctx-size", default=4096, show_default=True, type=int, help="llama.cpp context length.")
@click.option("--constrain/--no-constrain", default=True, show_default=True,
              help="Decode requests with tools under their call grammar (valid calls or text; tool_choice honoured).")
@click.option("--verbose", is_flag=True, help="Log every request.")
def main(model, engine, host, port, fmt_name, threads, ctx_size, constrain, verbose):
    try:
        with open_service(model, engine, fmt_name, threads, ctx_size, constrain) as service:
            server = make_server(service, host, port, verbose)
            click.echo(f"serving {service.model_name} ({service.fmt.name}, {service.engine_name}, "
                       f"{'constrained' if constrain else 'unconstrained'}) "
                       f"on http://{host}:{port}/v1 (Ctrl-C stops)")
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
    except (InputError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(str(e)) from None


if __name__ == "__main__":
    main()
