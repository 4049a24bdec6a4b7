"""The everyday tool bank: the real bank loads through calltune's own validators and has the
coverage the foundation corpus relies on; a broken domain fails with an InputError naming its file."""

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from calltune.errors import InputError
from calltune.foundation.toolbank import TOOLBANK_ROOT, load_toolbank, toolbank_tools


@pytest.fixture(scope="module")
def bank():
    return load_toolbank()


@pytest.fixture(scope="module")
def tools():
    return toolbank_tools()


def _domain(example) -> str:
    return Path(example.path).parent.name


def _by_domain(examples) -> dict[str, list]:
    grouped = defaultdict(list)
    for example in examples:
        grouped[_domain(example)].append(example)
    return grouped


def test_size_and_unique_names(bank, tools):
    names = [t["function"]["name"] for t in tools]
    domains = [p for p in TOOLBANK_ROOT.iterdir() if (p / "tools.json").is_file()]
    assert len(names) >= 150
    assert len(domains) >= 16
    assert len(set(names)) == len(names)
    assert 4000 <= len(bank) <= 8000


def test_every_tool_is_called_often(bank, tools):
    rows = Counter(name for e in bank for name in {c["name"] for c in e.calls})
    thin = {t["function"]["name"]: rows[t["function"]["name"]] for t in tools if rows[t["function"]["name"]] < 15}
    assert not thin, f"tools with fewer than 15 rows: {thin}"


def test_every_domain_has_parallel_and_no_call_rows(bank):
    for domain, examples in _by_domain(bank).items():
        assert sum(len(e.calls) > 1 for e in examples) >= 5, domain
        assert sum(not e.calls for e in examples) >= 12, domain


def test_hand_written_examples_are_loaded(bank):
    assert any(e.history for e in bank)
    assert any(e.tool_results and e.answer for e in bank)
    assert all(Path(e.path).name in ("templates.yaml", "examples.jsonl") for e in bank)


def test_examples_offer_their_own_domain_tools(bank):
    for domain, examples in _by_domain(bank).items():
        offered = [t["function"]["name"] for t in examples[0].tools]
        for e in examples:
            assert [t["function"]["name"] for t in e.tools] == offered
            assert {c["name"] for c in e.calls} <= set(offered), e.query


def test_no_duplicate_queries_within_a_domain(bank):
    for domain, examples in _by_domain(bank).items():
        repeated = [q for q, n in Counter(e.query for e in examples).items() if n > 1]
        assert not repeated, (domain, repeated[:5])


def _schemas(schema):
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from _schemas(sub)
    if isinstance(schema.get("items"), dict):
        yield from _schemas(schema["items"])


def test_schema_features_present(tools):
    params = [t["function"]["parameters"] for t in tools]
    nodes = [s for p in params for s in _schemas(p)]
    assert any("enum" in s for s in nodes)
    assert any(s.get("type") == "integer" and "minimum" in s and "maximum" in s for s in nodes)
    assert any(s.get("type") == "boolean" for s in nodes)
    assert any(s.get("type") == "array" and s.get("items", {}).get("type") == "string" for s in nodes)
    assert any(s.get("type") == "array" and s.get("items", {}).get("type") == "object" for s in nodes)
    assert any(s.get("type") == "object" and s.get("properties") for p in params
               for s in p.get("properties", {}).values())
    assert sum(set(p.get("properties", {})) - set(p.get("required", [])) != set() for p in params) > len(params) // 2


def _copy_domains(tmp_path, names):
    for name in names:
        shutil.copytree(TOOLBANK_ROOT / name, tmp_path / name)
    return tmp_path


def test_deterministic_for_a_seed_different_for_another(tmp_path):
    root = _copy_domains(tmp_path, ["alarms_timers", "weather"])
    rows = lambda seed: [(e.query, json.dumps(e.calls, sort_keys=True)) for e in load_toolbank(root, seed)]
    first = rows(0)
    assert rows(0) == first
    assert rows(1) != first


def _tiny_bank(tmp_path, templates: str) -> Path:
    domain = tmp_path / "clock"
    domain.mkdir()
    (domain / "tools.json").write_text(json.dumps([{"type": "function", "function": {
        "name": "set_timer", "description": "Start a timer.",
        "parameters": {"type": "object", "properties": {"seconds": {"type": "integer", "minimum": 1}},
                       "required": ["seconds"]}}}]))
    (domain / "templates.yaml").write_text(templates)
    return domain


def test_tiny_bank_loads(tmp_path):
    _tiny_bank(tmp_path, 'templates:\n  - patterns: ["timer {s} seconds"]\n    slots: {s: [5, 30]}\n'
                         '    calls: [{name: set_timer, arguments: {seconds: "{s}"}}]\n')
    examples = load_toolbank(tmp_path)
    assert [(e.query, e.calls[0]["arguments"]) for e in examples] == [
        ("timer 5 seconds", {"seconds": 5}), ("timer 30 seconds", {"seconds": 30})]
    assert [t["function"]["name"] for t in toolbank_tools(tmp_path)] == ["set_timer"]


def test_bad_template_names_its_file_and_line(tmp_path):
    domain = _tiny_bank(tmp_path, 'templates:\n  - patterns: ["timer {s}"]\n    slots: {s: [zero]}\n'
                                  '    calls: [{name: set_timer, arguments: {seconds: "{s}"}}]\n')
    with pytest.raises(InputError) as caught:
        load_toolbank(tmp_path)
    assert caught.value.path == str(domain / "templates.yaml")
    assert caught.value.line == 2
    assert "seconds" in caught.value.field


def test_bad_tools_file_names_it(tmp_path):
    domain = _tiny_bank(tmp_path, "templates: []\n")
    (domain / "tools.json").write_text('[{"type": "function", "function": {"name": "1bad"}}]')
    with pytest.raises(InputError) as caught:
        load_toolbank(tmp_path)
    assert str(domain / "tools.json") in str(caught.value)


def test_duplicate_name_across_domains(tmp_path):
    _tiny_bank(tmp_path, "templates: []\n")
    shutil.copytree(tmp_path / "clock", tmp_path / "kitchen")
    with pytest.raises(InputError, match="duplicate tool name 'set_timer'") as caught:
        toolbank_tools(tmp_path)
    assert caught.value.path == str(tmp_path / "kitchen" / "tools.json")


def test_empty_bank_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no tool bank domains"):
        load_toolbank(tmp_path / "missing")
