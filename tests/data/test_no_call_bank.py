"""The built-in no-call bank: big enough, filtered against the user's tools, mixed in at its share."""

import json

import pytest

from calltune.data.generate import generate
from calltune.data.nocall import bank_requests, draw_no_calls, needed, shared_words, tool_vocabulary
from calltune.data.text import normalise_text
from calltune.data.tools import load_tools
from data_helpers import ROOT, tools_file, weather, write_jsonl

STARTER_TOOLS = load_tools(ROOT / "data" / "tools.json")
BIKE_TOOLS = load_tools(ROOT / "bench" / "newdomain" / "tools.json")
MUSIC = {"type": "function", "function": {"name": "play_music", "description": "Play a song, album or playlist.",
                                          "parameters": {"type": "object", "properties": {
                                              "title": {"type": "string", "description": "Song or album"}}}}}


def texts(draw):
    return {r.text for r in draw.requests}


def test_the_bank_holds_over_300_distinct_everyday_requests_in_sections():
    requests, triggers = bank_requests()
    keys = [normalise_text(r.text) for r in requests]
    assert len(requests) >= 300 and len(set(keys)) == len(keys)
    assert {"chit-chat", "knowledge", "creative", "device", "errands", "personal"} <= set(triggers)
    assert all(r.section for r in requests)


def test_a_request_sharing_a_word_with_the_tools_is_dropped():
    vocabulary = tool_vocabulary([MUSIC])
    assert shared_words("Play some relaxing jazz", vocabulary) == {"play"}
    assert shared_words("Skip this song", vocabulary) == {"song"}
    assert shared_words("Tell me a joke", vocabulary) == set()
    everything = draw_no_calls([MUSIC], 1000, seed=0)
    assert "Play my workout playlist" not in texts(everything) and "Tell me a joke" in texts(everything)
    assert "device" in everything.dropped_sections  # a music tool serves the whole device section's kind


def test_a_search_tool_drops_general_knowledge_and_a_bike_app_keeps_it():
    starter = draw_no_calls(STARTER_TOOLS, 1000, seed=0)
    bikes = draw_no_calls(BIKE_TOOLS, 1000, seed=0)
    assert "Who painted the Mona Lisa?" not in texts(starter) and "Who painted the Mona Lisa?" in texts(bikes)
    assert "knowledge" in starter.dropped_sections and "knowledge" not in bikes.dropped_sections
    # adjacent requests a starter tool might serve go; plain chit-chat stays
    assert {"Read my new text messages", "Send a WhatsApp message to Priya saying I'm on my way"}.isdisjoint(
        texts(starter))
    assert {"Tell me a joke", "Turn on airplane mode", "Set a timer for 10 minutes"} <= texts(starter)
    assert "Order a large pepperoni pizza" in texts(starter) and "Order a large pepperoni pizza" not in texts(bikes)
    requests, _ = bank_requests()
    assert starter.dropped + starter.available == len(requests) and starter.dropped > 50


def test_draws_are_seeded_and_skip_queries_the_dataset_has():
    first = draw_no_calls(STARTER_TOOLS, 20, seed=5)
    assert texts(first) == texts(draw_no_calls(STARTER_TOOLS, 20, seed=5)) != texts(draw_no_calls(STARTER_TOOLS, 20, 6))
    excluded = draw_no_calls(STARTER_TOOLS, 1000, seed=5, exclude={normalise_text("Tell me a joke")},
                             key=normalise_text)
    assert "Tell me a joke" not in texts(excluded) and len(first.requests) == 20


@pytest.mark.parametrize("rows, no_calls, share, expected", [
    (100, 0, 0.15, 18), (100, 15, 0.15, 0), (100, 30, 0.15, 0), (85, 0, 0.15, 15), (100, 0, 0.0, 0)])
def test_needed_tops_up_to_the_share_of_the_final_dataset(rows, no_calls, share, expected):
    n = needed(rows, no_calls, share)
    assert n == expected
    if n:
        assert (no_calls + n) / (rows + n) >= share > (no_calls + n - 1) / (rows + n - 1)


def test_generate_mixes_bank_rows_in_and_keeps_the_users_own_no_calls(tmp_path):
    rows = [{"query": f"Weather in city number {i}?", "calls": [weather(f"City{i}")]} for i in range(40)]
    rows += [{"query": "Sing me a song", "calls": []}, {"query": "Tell me a joke", "calls": []}]
    gen = {"tools": str(tools_file(tmp_path)), "examples": str(write_jsonl(tmp_path / "e.jsonl", rows)),
           "templates": "", "imports": [], "no_call_answer": "No tool fits.", "duplicate_queries": "warn",
           "no_call_share": 0.25}
    result = generate(gen, seed=0)
    no_calls = [r for r in result.records if not r["meta"]["calls"]]
    assert len(no_calls) / len(result.records) == pytest.approx(0.25, abs=0.01)
    assert result.sources["no_call_bank"] == len(no_calls) - 2 == 12
    mine = [r["messages"][0]["content"] for r in no_calls[:2]]
    assert mine == ["Sing me a song", "Tell me a joke"]  # kept, first, even though "song"/"joke" may be in the bank
    bank = no_calls[2:]
    assert all(r["meta"]["source"].startswith("calltune/data/banks/no_call.txt:") for r in bank)
    assert all(r["messages"][-1] == {"role": "assistant", "content": "No tool fits."} for r in bank)
    assert "Tell me a joke" not in [r["messages"][0]["content"] for r in bank]  # no duplicate of the user's
    assert result.report["no_call_bank_filtered"] > 0
    assert json.dumps(result.records) == json.dumps(generate(gen, seed=0).records)
