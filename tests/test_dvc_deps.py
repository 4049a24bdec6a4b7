"""dvc.yaml deps that cannot go stale.

Every stage runs `python stages/<x>.py`; a change to any calltune module that script imports (directly
or through other calltune modules, at module level or inside a function) must rerun the stage, so each
file of that import closure has to be one of the stage's deps or sit below a directory dep. The closure
is computed statically with `ast`, so the test needs none of the heavy libraries the stages import.

Params that name input files (generate.tools, generate.examples, generate.templates) must be deps too,
via `${...}` interpolation: the last test drives real DVC in a temporary repository and checks that
editing the file generate.tools names makes `dvc status` report the generate stage.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "calltune"
SCRIPT = re.compile(r"\bpython\s+(stages/\w+\.py)\b")


def module_file(name: str) -> Path | None:
    """The file of module `name` (a package resolves to its __init__.py), or None when it is not one."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(file: Path) -> set[str]:
    """Every calltune module `file` imports anywhere in its body (function-level imports included),
    plus the packages whose __init__ runs on the way."""
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    here = ".".join(file.relative_to(ROOT).with_suffix("").parts)
    package = here if file.name == "__init__.py" else here.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # `from calltune.x import y` imports calltune.x.y when y is a submodule
            names.update(f"{module}.{alias.name}" for alias in node.names if module_file(f"{module}.{alias.name}"))
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for i in range(1, len(parts) + 1):  # the parents' __init__ run first
            found.add(".".join(parts[:i]))
    return {name for name in found if module_file(name)}


def import_closure(script: Path) -> set[Path]:
    """The calltune files (relative to the repo root) that running `script` can import."""
    seen, todo, files = set(), list(imported_modules(script)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        file = module_file(name)
        files.add(file.relative_to(ROOT))
        todo.extend(imported_modules(file) - seen)
    return files


def covered(file: Path, deps: list[str]) -> bool:
    return any(file == Path(dep) or Path(dep) in file.parents for dep in deps if "${" not in dep)


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def script_stages() -> list[tuple[str, str, list[str]]]:
    """(stage, script, deps) of every stage whose cmd runs a stages/ script (matrix stages as written)."""
    found = []
    for name, stage in stages().items():
        match = SCRIPT.search(stage["cmd"])
        if match:
            found.append((name, match.group(1), [str(dep) for dep in stage.get("deps", [])]))
    return found


def test_every_stage_runs_a_script():
    # guards the test below against a cmd it would silently skip
    assert {name for name, _, _ in script_stages()} == set(stages())


@pytest.mark.parametrize("stage,script,deps", script_stages(), ids=[s[0] for s in script_stages()])
def test_stage_deps_cover_the_import_closure(stage, script, deps):
    assert script in deps, f"stage {stage}: its script {script} is not a dep"
    closure = import_closure(ROOT / script)
    assert closure, f"stage {stage}: {script} imports nothing from {PACKAGE}?"
    missing = sorted(str(file) for file in closure if not covered(file, deps))
    assert not missing, f"stage {stage}: dvc.yaml deps miss files {script} imports: {', '.join(missing)}"


def test_closure_follows_function_level_and_submodule_imports(tmp_path):
    # the closure must see what a module-level-only scan would miss
    closure = import_closure(ROOT / "stages/generate.py")
    assert Path("calltune/data/generate.py") in closure
    assert Path("calltune/__init__.py") in closure and Path("calltune/data/__init__.py") in closure
    assert Path("calltune/errors.py") in closure  # reached only through other modules


def test_params_naming_input_files_are_deps():
    generate = stages()["generate"]
    deps = [str(dep) for dep in generate["deps"]]
    for key in ("generate.tools", "generate.examples"):
        assert f"${{{key}}}" in deps, f"generate: {key} names an input file but ${{{key}}} is not a dep"
    # generate.templates may be "" (no templates): DVC cannot take an empty dep path, so the stage
    # lists the `generate` params block instead (any change of the path reruns it) and the starter
    # file itself; a template file of your own is covered once you point generate.templates at it
    # and add it to deps (see the comment in dvc.yaml).
    params = [p if isinstance(p, str) else next(iter(p)) for p in generate["params"]]
    assert "generate" in params or "generate.templates" in params


def _run(cwd: Path, env: dict, *args: str) -> str:
    proc = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_changing_the_tools_file_named_by_params_makes_generate_stale(tmp_path):
    """Real DVC: the generate stage as dvc.yaml writes it, with stand-in deps, reports a change when
    the file generate.tools names (a file of the user's own, not data/tools.json) changes."""
    generate = stages()["generate"]
    repo = tmp_path / "repo"
    repo.mkdir()
    tools = "mine/my_tools.json"
    (repo / "params.yaml").write_text(yaml.safe_dump({
        "base": {"seed": 1}, "model": {"format": "auto"},
        "generate": {"tools": tools, "examples": "data/examples.jsonl", "templates": "data/templates.yaml"}}))
    deps = [str(d) for d in generate["deps"]]
    named = {"${generate.tools}": tools, "${generate.examples}": "data/examples.jsonl"}
    for dep in sorted(deps, key=len, reverse=True):  # stand-ins, deepest first: only their hashes matter
        path = repo / named.get(dep, dep)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(f"{dep}\n")
    out = generate["outs"][0]
    metrics = next(iter(generate["metrics"][0]))
    writer = f"import pathlib; [pathlib.Path(p).write_text('x') for p in ('{out}', '{metrics}')]"
    for target in (out, metrics):
        (repo / target).parent.mkdir(parents=True, exist_ok=True)
    stage = {"cmd": f'python -c "{writer}"', "deps": deps, "params": generate["params"], "outs": [out],
             "metrics": generate["metrics"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"generate": stage}}, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"),
           "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"), "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"),
           "GIT_CONFIG_NOSYSTEM": "1"}
    _run(repo, env, "git", "init", "-q")
    _run(repo, env, "dvc", "init", "-q")
    _run(repo, env, "dvc", "repro", "-q", "generate")  # records every dep's hash in dvc.lock
    assert "up to date" in _run(repo, env, "dvc", "status", "generate")

    (repo / tools).write_text('[{"name": "changed"}]\n')
    status = _run(repo, env, "dvc", "status", "generate")
    assert "generate:" in status and tools in status and "modified" in status, status
