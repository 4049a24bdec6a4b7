"""dvc.yaml deps that cannot go stale.

Every stage runs `python stages/<x>.py`; a change to any calltune module that script imports (directly
or through other calltune modules, at module level or inside a function) must rerun the stage, so each
file of that import closure has to be one of the stage's deps or sit below a directory dep. The closure
is computed statically with `ast`, so the test needs none of the heavy libraries the stages import.
The same import graph must have no cycles, between modules or between packages.

Params that name input files (generate.tools, generate.examples, generate.templates) must be deps too,
via `${...}` interpolation: the last test drives real DVC in a temporary repository and checks that
editing the file generate.tools names makes `dvc status` report the generate stage.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import yaml

from dvc_helpers import dvc_env, run

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "calltune"


def module_file(name: str) -> Path | None:
    """The file of module `name` (a package resolves to its __init__.py), or None when it is not one."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(file: Path, parents: bool = True) -> set[str]:
    """Every calltune module `file` imports anywhere in its body (function-level imports included),
    plus (`parents`) the packages whose __init__ runs on the way."""
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
        for i in range(1 if parents else len(parts), len(parts) + 1):  # the parents' __init__ run first
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


PIPELINES = {"dvc.yaml": "", "foundation/dvc.yaml": "foundation/"}  # file -> where its paths are relative to
MODULE = re.compile(r"\bpython\s+-m\s+(calltune(?:\.\w+)+)")


def stages(pipeline: str = "dvc.yaml") -> dict[str, dict]:
    return yaml.safe_load((ROOT / pipeline).read_text(encoding="utf-8"))["stages"]


def entry_points(cmd) -> list[Path]:
    """The stages/ scripts and `python -m calltune...` modules a stage's cmd (one or a list) runs."""
    text = " ".join(cmd) if isinstance(cmd, list) else cmd
    found = re.finditer(r"\bpython\s+((?:\.\./)?stages/\w+\.py)", text)
    scripts = [ROOT / m.group(1).removeprefix("../") for m in found]
    return scripts + [module_file(m.group(1)) for m in MODULE.finditer(text)]


def script_stages() -> list[tuple[str, list[Path], list[str]]]:
    """(pipeline:stage, entry points, deps relative to the repo root) of every stage of both pipelines."""
    found = []
    for pipeline, where in PIPELINES.items():
        for name, stage in stages(pipeline).items():
            deps = [str(Path(os.path.normpath(where + str(dep)))) for dep in stage.get("deps", [])]
            found.append((f"{pipeline}:{name}", entry_points(stage["cmd"]), deps))
    return found


def test_every_stage_runs_a_script():
    # guards the test below against a cmd it would silently skip
    assert all(entries for _, entries, _ in script_stages())
    assert len(script_stages()) == sum(len(stages(p)) for p in PIPELINES)


def nested_dvc_projects() -> list[Path]:
    """Folders below the root that are DVC projects of their own (`dvc init --subdir`): DVC hides
    their files from the enclosing project, so a dep in one of them hashes as an empty folder."""
    return sorted(p.parent.relative_to(ROOT) for p in ROOT.glob("*/**/.dvc") if p.is_dir()
                  and not any(part in (".venv", "node_modules", ".git") for part in p.parts))


def test_no_main_pipeline_dep_lies_in_a_nested_dvc_project():
    # the shipped foundation adapter once lived in foundation/ (a nested project): the base stage's
    # dep on it hashed as an empty folder, and a new adapter did not rerun anything
    nested = nested_dvc_projects()
    assert Path("foundation") in nested  # the rule below is not vacuous
    hidden = [f"{name}: {dep}" for name, stage in stages().items() for dep in stage.get("deps", [])
              if any(Path(dep) == n or n in Path(dep).parents for n in nested)]
    assert not hidden, f"DVC cannot see these deps (inside a nested DVC project): {hidden}"


@pytest.mark.parametrize("stage,entries,deps", script_stages(), ids=[s[0] for s in script_stages()])
def test_stage_deps_cover_the_import_closure(stage, entries, deps):
    missing = set()
    for entry in entries:
        closure = import_closure(entry)
        assert closure, f"stage {stage}: {entry.relative_to(ROOT)} imports nothing from {PACKAGE}?"
        missing |= {str(file) for file in closure | {entry.relative_to(ROOT)} if not covered(file, deps)}
    assert not missing, f"stage {stage}: dvc.yaml deps miss files it runs or imports: {', '.join(sorted(missing))}"


def test_closure_follows_function_level_and_submodule_imports(tmp_path):
    # the closure must see what a module-level-only scan would miss
    closure = import_closure(ROOT / "stages/generate.py")
    assert Path("calltune/data/generate.py") in closure
    assert Path("calltune/__init__.py") in closure and Path("calltune/data/__init__.py") in closure
    assert Path("calltune/errors.py") in closure  # reached only through other modules


def import_graph() -> dict[str, set[str]]:
    """calltune module -> the calltune modules it names in an import (anywhere in its body)."""
    graph = {}
    for file in sorted((ROOT / PACKAGE).rglob("*.py")):
        name = ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m for m in imported_modules(file, parents=False) if m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the packages its modules import (a package's own subpackages are not an edge)."""
    def package(name):
        return name if module_file(name).name == "__init__.py" else name.rpartition(".")[0]

    edges = {}
    for name, targets in graph.items():
        for target in targets:
            a, b = package(name), package(target)
            if not (a == b or b.startswith(a + ".") or a.startswith(b + ".")):
                edges.setdefault(a, set()).add(b)
    return edges


def test_no_import_cycles_between_modules_or_packages():
    graph = import_graph()
    assert "calltune.train.run" in graph and "calltune.train.session" in graph["calltune.train.run"]
    assert cycles(graph) == [], "modules import each other (function-level imports count too)"
    assert cycles(package_graph(graph)) == [], "packages import each other"


def test_cycle_finder_finds_a_cycle_hidden_behind_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


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
    env = dvc_env(tmp_path)
    run(repo, env, "git", "init", "-q")
    run(repo, env, "dvc", "init", "-q")
    run(repo, env, "dvc", "repro", "-q", "generate")  # records every dep's hash in dvc.lock
    assert "up to date" in run(repo, env, "dvc", "status", "generate", with_stderr=True)

    (repo / tools).write_text('[{"name": "changed"}]\n')
    status = run(repo, env, "dvc", "status", "generate", with_stderr=True)
    assert "generate:" in status and tools in status and "modified" in status, status
