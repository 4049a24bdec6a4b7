"""The synthesize stage under real DVC: a rerun with the same params and inputs is restored from
DVC's run cache, byte for byte, without a single request to the endpoint.

A throwaway git + DVC project gets the repository's own `synthesize` stage from dvc.yaml (code
deps and the script pointed at this checkout), small data files, and a params.yaml whose
generate.synthetic points at a counting fake OpenAI-compatible endpoint in a thread.
"""

from __future__ import annotations

import hashlib
import http.server
import json
from contextlib import contextmanager
from pathlib import Path

import yaml
from data_helpers import CALCULATOR, ROOT, WEATHER, weather, write_json, write_jsonl
from dvc_helpers import commit_project, dvc_env, run
from http_helpers import serving_in_thread

REPLIES = {  # tool -> the items its reply holds: all valid, none a duplicate
    "get_weather": [{"query": "Weather in Lima?", "calls": [weather("Lima")]}, {"query": "Sing me a song", "calls": []}],
    "calculator": [{"query": "What is 12 times 7?", "calls": [{"name": "calculator",
                                                               "arguments": {"expression": "12 * 7"}}]}],
}
EXAMPLES = [{"query": "What is the weather in Oslo?", "calls": [weather("Oslo")]},
            {"query": "What is 2 plus 2?", "calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}]}]
TEMPLATES = {"templates": [{"name": "forecast", "patterns": ["Forecast for {city}"], "slots": {"city": ["Quito"]},
                            "calls": [{"name": "get_weather", "arguments": {"location": "{city}"}}]}]}
OUT, METRICS = "data/synthetic/examples.jsonl", "metrics/synthetic.json"


@contextmanager
def counting_endpoint():
    """(base_url, requests) of an endpoint on 127.0.0.1 that answers each tool's prompt with REPLIES[tool]
    and appends every request's tool name to `requests`; always shut down."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][0]["content"]
            tool = json.loads(prompt.split("The tool, as JSON:\n", 1)[1].split("\n", 1)[0])["name"]
            requests.append(tool)
            payload = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                      "role": "assistant", "content": json.dumps(REPLIES[tool])}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving_in_thread(server) as base:
        yield f"{base}/v1", requests


def project(tmp: Path, base_url: str) -> None:
    """The repository's synthesize stage, its data and params, in a fresh directory."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["synthesize"]
    code = [d for d in stage["deps"] if d.startswith(("stages/", "calltune/"))]
    assert "stages/synthesize.py" in code and "calltune/data/synthetic.py" in code
    stage["deps"] = [str(ROOT / d) if d in code else d for d in stage["deps"]]  # this checkout's code
    stage["cmd"] = stage["cmd"].replace("stages/synthesize.py", str(ROOT / "stages" / "synthesize.py"))
    (tmp / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"synthesize": stage}}, sort_keys=False))
    (tmp / "data").mkdir()
    write_json(tmp / "data" / "tools.json", [WEATHER, CALCULATOR])
    write_jsonl(tmp / "data" / "examples.jsonl", EXAMPLES)
    (tmp / "data" / "templates.yaml").write_text(yaml.safe_dump(TEMPLATES))
    set_synthetic(tmp, enabled=True, base_url=base_url, model="tiny-test", api_key_env="CALLTUNE_UNSET_KEY_VAR",
                  examples_per_tool=2, no_call_per_tool=1, temperature=0.5, seed=7, timeout_s=10, max_retries=0)


def set_synthetic(tmp: Path, **values) -> None:
    path = tmp / "params.yaml"
    source = path if path.exists() else ROOT / "params.yaml"
    params = yaml.safe_load(source.read_text(encoding="utf-8"))
    params["generate"]["synthetic"].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_rerun_with_the_same_params_comes_from_the_run_cache_without_calling_the_endpoint(tmp_path):
    tmp = tmp_path / "project"
    tmp.mkdir()
    env = dvc_env(tmp_path)
    env.pop("CALLTUNE_UNSET_KEY_VAR", None)  # no API key: no Authorization header
    with counting_endpoint() as (url, requests):
        project(tmp, url)
        commit_project(tmp, env, "project")

        first = run(tmp, env, "dvc", "repro", with_stderr=True)
        assert requests == ["get_weather", "calculator"], first  # one request per tool
        records = [json.loads(line) for line in (tmp / OUT).read_text(encoding="utf-8").splitlines()]
        assert [(r["query"], r["provenance"]["tool"]) for r in records] == [
            ("Weather in Lima?", "get_weather"), ("Sing me a song", "get_weather"),
            ("What is 12 times 7?", "calculator")]
        for r in records:
            assert {k: r["provenance"][k] for k in ("source", "model", "base_url", "temperature")} == {
                "source": "synthetic", "model": "tiny-test", "base_url": url, "temperature": 0.5}
            assert len(r["provenance"]["prompt_sha256"]) == 64
        out_hash, metrics_hash = sha256(tmp / OUT), sha256(tmp / METRICS)
        assert json.loads((tmp / METRICS).read_text())["kept"] == 3

        set_synthetic(tmp, temperature=0.9)
        changed = run(tmp, env, "dvc", "repro", with_stderr=True)
        assert requests[2:] == ["get_weather", "calculator"], changed  # a changed param asks again
        assert {json.loads(line)["provenance"]["temperature"] for line in (tmp / OUT).read_text().splitlines()} == {0.9}

        set_synthetic(tmp, temperature=0.5)
        restored = run(tmp, env, "dvc", "repro", with_stderr=True)
        assert len(requests) == 4, f"the endpoint was called again: {requests}\n{restored}"
        assert "Stage 'synthesize' is cached - skipping run, checking out outputs" in restored
        assert sha256(tmp / OUT) == out_hash  # the very same examples and provenance
        assert sha256(tmp / METRICS) == metrics_hash  # the uncached metrics come back too

        status = run(tmp, env, "dvc", "status", with_stderr=True)
        assert "up to date" in status.lower(), status
