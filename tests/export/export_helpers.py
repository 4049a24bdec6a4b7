"""Helpers for the fuse / ONNX tests: stage commands, params files, data-contract check examples."""

from __future__ import annotations

import json
from pathlib import Path

from gguf_helpers import CALLS, TOOLS, conversation
from stage_helpers import ROOT, repo_params, stage_main  # noqa: F401 (re-exported)


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
