"""The everyday on-device tool bank: phone and app tools in foundation/toolbank/<domain>/.

Each domain folder holds tools.json (required), templates.yaml and examples.jsonl (both
optional), in exactly the formats of a user's data/ folder, so the bank is read and checked by
calltune's own loaders: a bad file fails with an InputError naming its file, line and field.
Every Example offers its own domain's tools; distractors from other domains are the corpus's job,
so tool names are unique across the whole bank.
"""

from __future__ import annotations

from pathlib import Path

from calltune.data.examples import Example, load_examples
from calltune.data.templates import load_templates
from calltune.data.tools import load_tools
from calltune.errors import InputError

TOOLBANK_ROOT = Path(__file__).resolve().parents[2] / "foundation" / "toolbank"


def load_toolbank(root=TOOLBANK_ROOT, seed: int = 0) -> list[Example]:
    """Every domain's template expansions (drawn with `seed`) and hand-written examples, in domain order."""
    examples = []
    for domain, tools in _domains(root):
        if (domain / "templates.yaml").is_file():
            examples += load_templates(domain / "templates.yaml", tools, seed)
        if (domain / "examples.jsonl").is_file():
            examples += load_examples(domain / "examples.jsonl", tools)
    return examples


def toolbank_tools(root=TOOLBANK_ROOT) -> list[dict]:
    """Every tool of the bank, domain by domain (for distractors)."""
    return [tool for _, tools in _domains(root) for tool in tools]


def _domains(root) -> list[tuple[Path, list[dict]]]:
    """(folder, validated tools) per domain, sorted by folder name; a name used twice is an error."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise InputError("no tool bank domains found (expected <domain>/tools.json folders)", path=root)
    found, first = [], {}
    for folder in folders:
        tools = load_tools(folder / "tools.json")
        for i, tool in enumerate(tools):
            name = tool["function"]["name"]
            if name in first:
                raise InputError(f"duplicate tool name {name!r} (also in {first[name]})",
                                 path=folder / "tools.json", field=f"[{i}].function.name")
            first[name] = folder / "tools.json"
        found.append((folder, tools))
    return found
