"""Helpers for the fuse / ONNX tests: stage commands, params files, data-contract check examples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml
from gguf_helpers import CALLS, TOOLS, conversation

ROOT = Path(__file__).resolve().parents[2]


def stage_main(name: str):
    """The click command of stages/NAME.py, run in-process with click's CliRunner."""
    spec = importlib.util.spec_from_file_location(f"calltune_stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def write_params(path: Path, **blocks) -> Path:
    """The repository's params.yaml with some keys of some blocks replaced."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for block, values in blocks.items():
        params[block].update(values)
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def write_check_examples(path: Path) -> Path:
    """The taught calls as data-contract rows (what data/splits/test.jsonl holds)."""
    rows = [{"id": f"ex-{i:03d}", "messages": conversation(query, name, arguments), "tools": TOOLS,
             "meta": {"source": f"test:{i}", "calls": [name]}} for i, (query, name, arguments) in enumerate(CALLS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def copy_without_chat_template(src: Path, dst: Path) -> Path:
    """A copy of a model directory with no chat template anywhere (tokenizer_config.json, .jinja)."""
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (dst / "tokenizer_config.json").write_text(json.dumps(config))
    (dst / "chat_template.jinja").unlink()
    return dst
