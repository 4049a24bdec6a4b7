"""Running a stage script in-process from a test: its click command, and the repository's
params.yaml with some keys replaced."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stage_main(name: str):
    """The click command of stages/NAME.py (invoke it with click's CliRunner)."""
    spec = importlib.util.spec_from_file_location(f"calltune_stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def repo_params(path: Path, **blocks) -> Path:
    """The repository's params.yaml with some keys of some blocks replaced, written to `path` (a
    directory: to params.yaml in it). Returns the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "params.yaml"
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for block, values in blocks.items():
        params[block].update(values)
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path
