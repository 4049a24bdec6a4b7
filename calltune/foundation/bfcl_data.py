"""BFCL v4 as shipped in the PyPI package `bfcl-eval` (Apache-2.0): which categories train the
foundation, which are held out for scoring it, and the filter that keeps them apart.

Train: the live categories (user-contributed, 2-37 tools a prompt) and the exec_* items.
Held out: the non-live categories, scored by `calltune.evaluate.bfcl`. Live and non-live share
~18 function names and a few questions: a training item that declares a held-out function, or
asks a held-out question, is dropped (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calltune.data.examples import Example
from calltune.data.importers import import_examples
from calltune.data.importers.bfcl import safe_name
from calltune.data.records import read_records
from calltune.data.text import normalise_text
from calltune.errors import InputError

TRAIN_CATEGORIES = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
                    "exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple")
HELD_OUT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def data_dir() -> Path:
    """bfcl_eval/data of the installed package (scripts/setup.sh installs it without its deps)."""
    try:
        import bfcl_eval
    except ImportError:
        raise InputError("the bfcl-eval package is not installed: pip install --no-deps bfcl-eval==2026.3.23",
                         field="bfcl") from None
    return Path(bfcl_eval.__file__).resolve().parent / "data"


def category_files(category: str) -> tuple[Path, Path | None]:
    """(questions, possible answers or None) of a BFCL v4 category; exec_* live under unused_datasets/."""
    root = data_dir()
    if category.startswith("exec_"):
        root = root / "unused_datasets"
        questions = root / "question" / f"BFCL_v4_{category}.json"
    else:
        questions = root / f"BFCL_v4_{category}.json"
    answers = root / "possible_answer" / f"BFCL_v4_{category}.json"
    if not questions.is_file():
        raise InputError(f"unknown BFCL category {category!r} (no {questions.name} in bfcl-eval)", field="bfcl")
    return questions, answers if answers.is_file() else None


def import_category(category: str, limit: int = 0) -> tuple[list[Example], int]:
    """(examples, records skipped as invalid) through calltune's BFCL importer. Public data carries
    some noise (e.g. "dontcare" for an integer): such records are skipped and counted."""
    questions, answers = category_files(category)
    spec = {"format": "bfcl", "path": str(questions), "skip_invalid": True, "limit": limit}
    if answers is not None:
        spec["answers"] = str(answers)
    return import_examples(spec)


@dataclass
class HeldOut:
    """What a training item must not share with the held-out categories."""

    names: set[str] = field(default_factory=set)  # declared function names, as written and as imported
    questions: set[str] = field(default_factory=set)  # user turns, normalised (data.text)

    def leaks(self, example: Example) -> str | None:
        """Why `example` would leak held-out data into training, or None."""
        for tool in example.tools:
            name = tool["function"]["name"] if "function" in tool else tool.get("name")
            if name in self.names:
                return "function"
        return "question" if normalise_text(example.query) in self.questions else None


def held_out() -> HeldOut:
    """Function names and questions of every held-out category, read straight from the files (not
    through the importer, so an item the importer would reject still guards its names)."""
    found = HeldOut()
    for category in HELD_OUT_CATEGORIES:
        questions, _ = category_files(category)
        for _, raw in read_records(questions):
            functions = raw.get("function", [])
            for function in functions if isinstance(functions, list) else [functions]:
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    found.names |= {function["name"], safe_name(function["name"])}
            for turn in raw.get("question", []):
                for message in turn if isinstance(turn, list) else [turn]:
                    if isinstance(message, dict) and message.get("role") == "user":
                        found.questions.add(normalise_text(str(message.get("content", ""))))
    return found
