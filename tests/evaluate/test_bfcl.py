"""BFCL held-out scoring: the real bfcl-eval data, both checkers on hand-made outputs, batched
generation equal to one-at-a-time generation, and the command line end to end on a tiny model."""

import ast
import json
import sys

import pytest
from click.testing import CliRunner

from calltune.evaluate import bfcl
from calltune.engines.torch_engine import generate_in_batches
from calltune.formats import get_format
from calltune.formats.functiongemma.syntax import format_call

FMT = get_format("functiongemma")


@pytest.fixture(scope="module")
def items():
    return {item.id: item for item in bfcl.load_items()}


def output(*calls) -> str:
    """FunctionGemma text of calls given as (name, arguments)."""
    return "".join(format_call(name, arguments) for name, arguments in calls)


def test_held_out_categories_load_from_the_package_data(items):
    counts = {c: sum(1 for i in items.values() if i.category == c) for c in bfcl.CATEGORIES}
    assert counts == {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200,
                      "irrelevance": 240}
    irrelevance = [i for i in items.values() if i.category == "irrelevance"]
    assert all(i.expected == [] and i.accept == [] and i.ground_truth == [] for i in irrelevance)
    others = [i for i in items.values() if i.category != "irrelevance"]
    assert all(i.expected and len(i.accept) == len(i.expected) == len(i.ground_truth) for i in others)
    assert all(i.messages[-1]["role"] == "user" for i in items.values())  # the prompt, not the answer
    assert [i.id for i in bfcl.load_items(["parallel", "multiple"], limit=2)] == [
        "parallel_0", "parallel_1", "multiple_0", "multiple_1"]


def test_names_are_made_safe_for_the_model_and_mapped_back_for_bfcl(items):
    item = items["parallel_0"]  # spotify.play
    assert [t["function"]["name"] for t in item.tools] == ["spotify_play"]
    assert item.names == {"spotify_play": "spotify.play"}
    assert [c["name"] for c in item.expected] == ["spotify_play", "spotify_play"]
    calls = [{"name": "spotify_play", "arguments": {"artist": "Maroon 5"}}, {"name": "other", "arguments": {}}]
    assert bfcl.bfcl_calls(calls, item.names) == [{"spotify.play": {"artist": "Maroon 5"}}, {"other": {}}]


def test_possible_answers_become_accepted_values(items):
    item = items["simple_python_63"]  # genetics.calculate_similarity
    assert item.ground_truth == [{"genetics.calculate_similarity": {
        "species1": ["Human", "human"], "species2": ["Chimp", "chimp", "Chimpanzee", "chimpanzee"],
        "format": ["percentage", ""]}}]
    assert item.accept == [item.ground_truth[0]["genetics.calculate_similarity"]]
    nested = items["simple_python_89"].accept[0]["conditions"]  # {key: [acceptable values]} expanded
    assert nested == [{"department": "Science", "school": "Bluebird High School"},
                      {"department": "Science", "school": "Bluebird HS"}]


SIMILARITY = "genetics_calculate_similarity"
CASES = [  # (item, model output, correct by both checkers)
    ("simple_python_63", output((SIMILARITY, {"species1": "Human", "species2": "Chimp", "format": "percentage"})),
     True),  # the first accepted values
    ("simple_python_63", output((SIMILARITY, {"species1": "Human", "species2": "Gorilla", "format": "percentage"})),
     False),  # a wrong value
    ("simple_python_63", output((SIMILARITY, {"species1": "human", "species2": "Chimpanzee", "format": "percentage"})),
     True),  # accepted alternatives
    ("simple_python_63", output((SIMILARITY, {"species1": "Human", "species2": "chimp"})),
     True),  # an optional argument left out ("" accepted)
    ("simple_python_63", output((SIMILARITY, {"species1": "Human", "species2": "Chimp", "format": "ratio"})),
     False),  # an optional argument with a wrong value
    ("simple_python_63", output((SIMILARITY, {"species2": "Chimp"})), False),  # a required argument missing
    ("simple_python_63", output((SIMILARITY, {"species1": "Human", "species2": "Chimp", "extra": 1})),
     False),  # an unknown argument
    ("simple_python_63", "<start_function_call>call:" + SIMILARITY + "{species1:<escape>Human", False),  # unparseable
    ("parallel_0", output(("spotify_play", {"artist": "Maroon 5", "duration": 15}),
                          ("spotify_play", {"artist": "Taylor Swift", "duration": 20})),
     True),  # a parallel pair in swapped order
    ("parallel_0", output(("spotify_play", {"artist": "Maroon 5", "duration": 20}),
                          ("spotify_play", {"artist": "Taylor Swift", "duration": 15})),
     False),  # values crossed between the pair
    ("parallel_0", output(("spotify_play", {"artist": "Taylor Swift", "duration": 20})), False),  # one call short
    ("irrelevance_0", "I cannot help with that using the tools I have.", True),  # no call
    # outputs on which the checkers disagreed in the foundation's third run (foundation/README.md):
    ("simple_python_26", output(("calculate_velocity", {"distance": 50.0, "duration": 2})),
     False),  # 50.0 for an integer: equal to the answer, but not of its type
    ("simple_python_17", output(("get_prime_factors", {"number": 450})),
     False),  # a required argument left out, though its possible answers accept "" as well
    ("simple_python_298", output(("music_theory_key_signature", {"key": "C", "scale_type": "major"})),
     False),  # 'C' for 'C#': '#' is not one of the characters BFCL's string rule drops
    ("multiple_99", output(("calculus_derivative", {"function": "2x^2", "value": 1})),
     True),  # '2x^2' for '2x**2': both drop to '2x2' under BFCL's rule
    ("irrelevance_0", output(("determine_body_mass_index", {"weight": 70, "height": 1.75})), False),  # a call
]


@pytest.mark.parametrize("item_id, text, correct", CASES)
def test_both_checkers_agree_on_hand_made_outputs(items, item_id, text, correct):
    row = bfcl.score(items[item_id], FMT, text, n_tokens=0)
    assert (row["calltune_correct"], row["bfcl_correct"], row["agree"]) == (correct, correct, True), row
    assert row["bfcl_reason"] and row["calltune_reason"]


def test_accepted_alternatives_are_exact_for_calltune(items):
    text = output((SIMILARITY, {"species1": "human", "species2": "Chimpanzee"}))
    row = bfcl.score(items["simple_python_63"], FMT, text, n_tokens=0)
    assert (row["calltune_verdict"], row["calltune_exact"]) == ("exact", True)


def test_the_real_checker_rejects_a_dotless_name_it_was_not_told_about(items):
    """The calls reach bfcl's checker under BFCL's dotted names; unmapped they would fail there."""
    item = items["parallel_0"]
    calls = [{"name": "spotify_play", "arguments": {"artist": a, "duration": d}}
             for a, d in (("Taylor Swift", 20), ("Maroon 5", 15))]
    assert bfcl.bfcl_verdict(item, calls, None) == (True, "valid")
    checker, language = bfcl._checker()
    result = checker(item.functions, [{c["name"]: c["arguments"]} for c in calls], item.ground_truth, language,
                     item.category, bfcl.CHECKER_MODEL)
    assert result["valid"] is False


def test_checker_stand_in_registry_is_gone_and_has_bfcls_own_flag():
    """The stand-in for bfcl's model registry only lives while the checker imports, and carries the
    underscore_to_dot flag of the registry entry it names (read from bfcl's source, not imported)."""
    bfcl._checker()
    assert bfcl.REGISTRY_MODULE not in sys.modules or hasattr(sys.modules[bfcl.REGISTRY_MODULE], "ModelConfig")
    source = (bfcl.data_dir().parent / "constants" / "model_config.py").read_text(encoding="utf-8")
    entries = next(node for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value ==
                                                         bfcl.CHECKER_MODEL.replace("_", "/") for k in node.keys))
    config = next(v for k, v in zip(entries.keys, entries.values) if k.value == bfcl.CHECKER_MODEL.replace("_", "/"))
    flag = next(kw.value.value for kw in config.keywords if kw.arg == "underscore_to_dot")
    assert flag is False


def test_summary_counts_by_hand(items):
    rows = [bfcl.score(items[i], FMT, text, 0) for i, text, _ in CASES[:3]] + \
           [bfcl.score(items["irrelevance_0"], FMT, "no call", 0)]
    summary = bfcl.summarize(rows)
    assert summary["simple_python"] == {"n": 3, "bfcl_accuracy": 0.6667, "calltune_ast_accuracy": 0.6667,
                                        "calltune_exact_match": 0.6667, "agreement": 1.0, "parse_valid_rate": 1.0,
                                        "call_rate": 1.0, "bfcl_checker_errors": 0}
    assert summary["irrelevance"]["n"] == 1 and summary["irrelevance"]["bfcl_accuracy"] == 1.0
    assert summary["all"]["n"] == 4 and list(summary) == ["simple_python", "irrelevance", "all"]
    assert "| simple_python | 3 | 0.667 | 0.667 | 1.000 |" in bfcl.table(summary)


# ---- batched generation --------------------------------------------------------------------------

N = 16
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
PROMPTS = [FMT.prompt([{"role": "user", "content": q}], tools) for q, tools in (  # the tiny model's greedy
    ("Send an email to bob about the meeting schedule at pm", None),  # outputs of these hold special tokens
    ("Weather in Paris?", None), ("Calculate 12 percent of 250", [WEATHER_TOOL]),  # at different places
    ("remind me to call mom", [WEATHER_TOOL]))]  # (or none)


@pytest.fixture(scope="module")
def engine(tiny_gemma_dir):
    """The tiny Gemma on one thread (a model this small only loses time to threads on a busy CPU);
    PyTorch's thread count is process-wide, so it is restored afterwards."""
    import torch

    from calltune.engines.torch_engine import TorchEngine

    threads = torch.get_num_threads()
    yield TorchEngine(tiny_gemma_dir, threads=1)
    torch.set_num_threads(threads)


def _stops_at_different_steps(texts, candidates, special):
    """Stop strings the model really generates, first met at different places in different rows,
    so that rows of one batch end at different steps (and the batch pads the ones done)."""
    found = sorted(piece for piece in candidates if any(t.find(piece, 1) > 0 for t in texts))
    if special:
        return found
    return next(([piece] for piece in found if len({t.find(piece, 1) for t in texts}) > 1), [])


@pytest.mark.parametrize("kind", ["none", "special", "plain"])
def test_batched_generation_equals_one_prompt_at_a_time(engine, kind):
    lengths = {len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS}
    assert len(lengths) == len(PROMPTS)  # every row is padded differently
    stop = []
    if kind != "none":
        free = [engine.generate(p, N, []).text for p in PROMPTS]
        candidates = set(engine.tokenizer.get_added_vocab()) if kind == "special" else {
            t[k:k + 3] for t in free for k in range(len(t) - 2) if t[k:k + 3].isascii() and t[k:k + 3].isalpha()}
        stop = _stops_at_different_steps(free, candidates, special=kind == "special")
        if not stop:
            pytest.skip(f"this random model's outputs have no {kind} piece to stop on")
    single = [engine.generate(p, N, stop) for p in PROMPTS]
    if stop:
        assert len({g.n_tokens for g in single}) > 1 and min(g.n_tokens for g in single) < N
    assert engine.generate_batch(PROMPTS, N, stop) == single
    assert generate_in_batches(engine, PROMPTS, N, stop, batch_size=3) == single


# ---- command line --------------------------------------------------------------------------------

def test_cli_end_to_end_on_a_tiny_model(tiny_gemma_dir, tmp_path):
    out, preds = tmp_path / "m" / "metrics.json", tmp_path / "p" / "preds.jsonl"
    result = CliRunner().invoke(bfcl.main, [str(tiny_gemma_dir), "--out", str(out), "--predictions", str(preds),
                                            "--limit", "2", "--max-new-tokens", "4", "--device", "cpu",
                                            "--batch-size", "5", "--threads", "1", "--no-progress", "--constrained"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert list(metrics["categories"]) == [*bfcl.CATEGORIES, "all"]
    assert metrics["constrained"]["categories"]["all"]["n"] == 10 and "constrained (" in result.output
    assert all(m["n"] == 2 for c, m in metrics["categories"].items() if c != "all")
    assert metrics["categories"]["all"]["n"] == 10 and metrics["format"] == "functiongemma"
    assert (metrics["device"], metrics["dtype"], metrics["limit"]) == ("cpu", "float32", 2)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in rows[:3]] == ["simple_python_0", "simple_python_1", "multiple_0"]
    assert set(rows[0]) >= {"id", "category", "raw_output", "calls", "parse_error", "calltune_correct",
                            "calltune_reason", "bfcl_correct", "bfcl_reason", "agree"}
    assert all(0 < r["n_generated_tokens"] <= 4 for r in rows)
    assert "| irrelevance | 2 |" in result.output


def test_constrained_rows_keep_valid_outputs_and_regenerate_the_others(items, engine):
    """A free output inside the grammar is kept as it is; an undeclared tool, a wrong type, an unknown
    argument or a cut-off call is generated again under the constraint, which parses and names only
    declared tools, with only declared arguments (the tiny model's weights are random)."""
    from calltune.engines.base import Generation

    chosen = [items[i] for i in ("simple_python_63", "simple_python_63", "parallel_0", "irrelevance_0", "multiple_0")]
    free = [output((SIMILARITY, {"species1": "Human", "species2": "Chimp"})),  # valid: kept
            output(("no_such_tool", {"x": 1})),  # undeclared tool
            output(("spotify_play", {"artist": "Maroon 5", "duration": "long"})),  # a string for an integer
            "I cannot help with that.",  # text: valid, kept
            output((SIMILARITY, {"species1": "Human"}))[:-5]]  # cut off mid-call
    generations = [Generation(text, 8) for text in free]
    rows = [bfcl.score(item, FMT, g.text, g.n_tokens) for item, g in zip(chosen, generations)]
    result = bfcl.constrain_rows(engine, FMT, chosen, rows, generations, batch_size=4, max_new_tokens=64,
                                 progress=False)
    assert result["regenerated"] == 3 and result["categories"]["all"]["n"] == 5
    assert rows[0]["constrained"]["raw_output"] == free[0] and rows[3]["constrained"]["raw_output"] == free[3]
    for item, row in zip(chosen, rows):
        kept = row["constrained"]
        assert kept["parse_error"] is None, kept
        declared = {t["function"]["name"]: t["function"]["parameters"] for t in item.tools}
        for call in kept["calls"]:
            assert call["name"] in declared
            assert set(call["arguments"]) <= set(declared[call["name"]]["properties"])
    assert rows[1]["parse_error"] is None and not rows[1]["calltune_correct"]  # the free row is unchanged


def test_rescore_judges_saved_outputs_again_and_keeps_the_run_figures(items, tiny_gemma_dir, tmp_path):
    """--rescore re-judges the raw outputs already saved (free and constrained): stale verdicts are
    replaced, generation figures kept, a row naming no held-out item is an error that writes nothing."""
    text = output(("calculate_velocity", {"distance": 50.0, "duration": 2}))
    row = bfcl.score(items["simple_python_26"], FMT, text, 12)
    stale = {**row, "calltune_correct": True, "agree": False, "constrained": {
        k: v for k, v in bfcl.score(items["simple_python_26"], FMT, output(
            ("calculate_velocity", {"distance": 50, "duration": 2})), 11).items() if k not in ("id", "category")}}
    out, preds = tmp_path / "metrics.json", tmp_path / "preds.jsonl"
    preds.write_text(json.dumps(stale) + "\n")
    out.write_text(json.dumps({"generation": {"seconds": 3.5}, "constrained": {"regenerated": 1}}))
    args = [str(tiny_gemma_dir), "--out", str(out), "--predictions", str(preds), "--rescore"]
    result = CliRunner().invoke(bfcl.main, args)
    assert result.exit_code == 0, result.output
    again = json.loads(preds.read_text())
    assert (again["calltune_correct"], again["agree"], again["n_generated_tokens"]) == (False, True, 12)
    assert again["constrained"]["calltune_correct"] and again["constrained"]["bfcl_correct"]
    metrics = json.loads(out.read_text())
    assert metrics["generation"] == {"seconds": 3.5} and metrics["rescored"] is True
    assert metrics["categories"]["all"]["calltune_ast_accuracy"] == 0.0
    assert metrics["constrained"]["regenerated"] == 1
    assert metrics["constrained"]["categories"]["all"]["bfcl_accuracy"] == 1.0
    before = (preds.read_text(), out.read_text())
    preds.write_text(json.dumps({**row, "id": "live_simple_0"}) + "\n")
    bad = CliRunner().invoke(bfcl.main, args)
    assert bad.exit_code == 2 and "name no held-out BFCL item (first: 'live_simple_0')" in bad.output
    assert out.read_text() == before[1]


def test_cli_bad_input_fails_cleanly_and_writes_nothing(tiny_gemma_dir, tmp_path):
    out, preds = tmp_path / "metrics.json", tmp_path / "preds.jsonl"
    runner = CliRunner()
    missing = runner.invoke(bfcl.main, [str(tmp_path / "nope"), "--out", str(out), "--predictions", str(preds)])
    assert missing.exit_code == 2 and "no config.json" in missing.output
    unknown = runner.invoke(bfcl.main, [str(tiny_gemma_dir), "--out", str(out), "--predictions", str(preds),
                                        "--categories", "simple_python,live_simple"])
    assert unknown.exit_code == 2 and "unknown BFCL category live_simple" in unknown.output
    assert not out.exists() and not preds.exists()
