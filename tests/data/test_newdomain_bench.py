"""bench/newdomain: a second domain written for the benchmark (8 examples per tool, no templates),
its separately written held-out file (reported) and dev file (chosen on), each valid and fair."""

from collections import Counter

import pytest

from calltune.data.banks import TEXT_BANKS, bank
from calltune.data.examples import load_examples
from calltune.data.generate import generate
from calltune.data.text import normalise_text
from calltune.data.tools import load_tools
from calltune.params import load_params
from data_helpers import ROOT

BENCH = ROOT / "bench" / "newdomain"
STARTER = {t["function"]["name"] for t in load_tools(ROOT / "data" / "tools.json")}


@pytest.fixture(scope="module")
def tools():
    return load_tools(BENCH / "tools.json")


@pytest.fixture(scope="module")
def examples(tools):
    return load_examples(BENCH / "examples.jsonl", tools)


@pytest.fixture(scope="module", params=["test.jsonl", "dev.jsonl"])
def held_out(request, tools):
    return load_examples(BENCH / request.param, tools)


def test_six_new_tools_each_called_by_exactly_eight_examples(tools, examples):
    names = {t["function"]["name"] for t in tools}
    assert len(names) == 6 and not names & STARTER
    assert Counter(n for e in examples for n in {c["name"] for c in e.calls}) == {name: 8 for name in names}


def test_the_held_out_files_are_big_varied_and_separate(examples, held_out):
    n = len(held_out)
    assert n >= 40
    assert 0.12 <= sum(not e.calls for e in held_out) / n <= 0.2
    assert sum(len(e.calls) > 1 for e in held_out) >= 4
    assert {c["name"] for e in held_out for c in e.calls} == {c["name"] for e in examples for c in e.calls}
    assert not {normalise_text(e.query) for e in held_out} & {normalise_text(e.query) for e in examples}


def test_no_held_out_query_is_generated_for_training_and_its_places_are_in_no_bank(held_out):
    params = load_params(ROOT / "params.yaml")
    gen = dict(params["generate"], tools=str(BENCH / "tools.json"), examples=str(BENCH / "examples.jsonl"),
               templates="")
    dataset = generate(gen, params["base"]["seed"])
    said = {normalise_text(m["content"]) for r in dataset.records for m in r["messages"] if m["role"] == "user"}
    assert not {normalise_text(e.query) for e in held_out} & said
    places = {c["arguments"][k] for e in held_out for c in e.calls for k in ("near", "station", "origin", "destination")
              if k in c["arguments"]}
    trained = {v for r in dataset.records for m in r["messages"] for call in m.get("tool_calls", [])
               for v in call["function"]["arguments"].values() if isinstance(v, str)}
    banked = {v.casefold() for name in TEXT_BANKS for v in bank(name)}
    unseen = places - trained
    assert len(unseen) >= 8 and not {p.casefold() for p in unseen} & banked  # new places stay new


def test_dev_and_held_out_files_share_no_query_and_no_place(tools):
    test, dev = (load_examples(BENCH / name, tools) for name in ("test.jsonl", "dev.jsonl"))
    assert len(test) >= 60
    assert not {normalise_text(e.query) for e in dev} & {normalise_text(e.query) for e in test}
    places = lambda rows: {c["arguments"][k].casefold() for e in rows for c in e.calls
                           for k in ("near", "station", "origin", "destination") if k in c["arguments"]}
    assert not places(dev) & places(test) - {"home", "work"}
