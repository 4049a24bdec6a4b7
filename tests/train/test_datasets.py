"""Tokenization with a completion mask, cutting at max_seq_len, length-grouped batches, collation."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from calltune.errors import InputError
from calltune.formats import get_format
from calltune.train.datasets import (TokenizedExample, collate, length_grouped_batches, tokenize_split, prefix_group,
                                     tokenize_segments)
from train_helpers import TOOLS, canonical_rows, write_rows


@pytest.fixture(params=["tiny_gemma_dir", "tiny_llama_dir"])
def tok_fmt(request):
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(request.param))
    return tokenizer, get_format("auto", tokenizer=tokenizer)


def test_targets_are_exactly_the_supervised_text(tok_fmt):
    tokenizer, fmt = tok_fmt
    for row in canonical_rows(4):
        segments = fmt.segments(row["messages"], row["tools"])
        ids, targets = tokenize_segments(segments, tokenizer)
        supervised = "".join(text for text, sup in segments if sup)
        target_ids = [i for i, t in zip(ids, targets) if t]
        assert tokenizer.decode(target_ids, skip_special_tokens=False) == supervised
        assert not targets[0]


def test_prompt_tokens_match_what_inference_sees(tok_fmt):
    tokenizer, fmt = tok_fmt
    row = canonical_rows(1)[0]
    ids, targets = tokenize_segments(fmt.segments(row["messages"], row["tools"]), tokenizer)
    prompt = tokenizer(fmt.prompt(row["messages"], row["tools"]), add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt)] == prompt
    assert targets.index(True) == len(prompt)


def test_load_examples_reads_ids_and_groups(tmp_path, tok_fmt):
    tokenizer, fmt = tok_fmt
    path = write_rows(tmp_path / "train.jsonl", canonical_rows(6))
    examples, report = tokenize_split(path, fmt, tokenizer, max_seq_len=4096)
    assert [e.id for e in examples] == [f"ex-0-{i:04d}" for i in range(6)]
    assert len({e.group for e in examples}) == 1  # same tools and system text: one shared head
    assert all(e.n_targets > 0 for e in examples)
    assert report.cut == [] and report.dropped == []


def test_cut_examples_are_reported_and_targetless_ones_dropped(tmp_path, tiny_gemma_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    fmt = get_format("functiongemma")
    path = write_rows(tmp_path / "train.jsonl", canonical_rows(4))
    full, _ = tokenize_split(path, fmt, tokenizer, max_seq_len=4096)
    starts = {e.id: e.targets.index(True) for e in full}
    limit = max(starts.values()) + 2  # every example keeps its first two target tokens
    expect_cut = sorted(e.id for e in full if len(e) > limit)
    assert expect_cut, "fixture examples should be longer than the limit"
    cut, report = tokenize_split(path, fmt, tokenizer, max_seq_len=limit)
    assert all(len(e) <= limit for e in cut) and len(cut) == len(full)
    assert sorted(report.cut) == expect_cut and report.dropped == []
    assert report.tokens_cut == sum(len(e) - limit for e in full if len(e) > limit)
    assert str(limit) in report.describe("train")
    limit = min(starts.values())  # the earliest target is cut off everywhere: nothing left to learn
    none_left, report = tokenize_split(path, fmt, tokenizer, max_seq_len=limit)
    assert none_left == [] and sorted(report.dropped) == sorted(starts)


@pytest.mark.parametrize("line, field", [
    ("[1, 2]", None),
    (json.dumps({"id": "x", "tools": TOOLS}), "messages"),
    (json.dumps({"id": "x", "messages": [{"role": "user", "content": "hi"}], "tools": "nope"}), "tools"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, tiny_gemma_dir, line, field):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    good = json.dumps(canonical_rows(1)[0])
    path = tmp_path / "train.jsonl"
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        tokenize_split(path, get_format("functiongemma"), tokenizer, 4096)
    assert err.value.line == 2 and err.value.path == str(path) and err.value.field == field


def test_example_without_a_target_is_an_error(tmp_path, tiny_gemma_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    row = canonical_rows(1)[0]
    row["messages"] = row["messages"][:2]  # ends with the user turn: nothing to learn
    path = write_rows(tmp_path / "train.jsonl", [row])
    with pytest.raises(InputError) as err:
        tokenize_split(path, get_format("functiongemma"), tokenizer, 4096)
    assert err.value.line == 1


def _examples(lengths, groups=None):
    groups = groups or ["g"] * len(lengths)
    return [TokenizedExample(str(i), tuple(range(3, 3 + n)), tuple([False] * (n - 1) + [True]), g)
            for i, (n, g) in enumerate(zip(lengths, groups))]


def test_batches_cover_every_example_once_and_are_seeded():
    examples = _examples([5, 40, 7, 33, 12, 9, 41, 6, 30, 8, 11])
    batches = length_grouped_batches(examples, 3, seed=7, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    assert batches == length_grouped_batches(examples, 3, seed=7, epoch=0)
    assert batches != length_grouped_batches(examples, 3, seed=7, epoch=1)
    assert batches != length_grouped_batches(examples, 3, seed=8, epoch=0)


def test_batches_group_similar_lengths_and_never_mix_prefix_groups():
    lengths = [5, 40, 7, 33, 12, 9, 41, 6, 30, 8, 11, 35]
    examples = _examples(lengths, ["a", "b"] * 6)
    batches = length_grouped_batches(examples, 3, seed=0, epoch=0)
    for b in batches:
        assert len({examples[i].group for i in b}) == 1
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    random_order = [list(range(i, i + 3)) for i in range(0, 12, 3)]
    assert padded < sum(len(b) * max(lengths[i] for i in b) for b in random_order)


def test_collate_right_pads_without_targets_on_padding():
    batch = collate(_examples([4, 2]), pad_id=0)
    assert batch.input_ids.tolist() == [[3, 4, 5, 6], [3, 4, 0, 0]]
    assert batch.targets.tolist() == [[False, False, False, True], [False, True, False, False]]
    assert batch.n_tokens == 6 and batch.n_targets == 2


def test_prefix_group_depends_on_tools_and_system_only():
    rows = canonical_rows(3)
    assert len({prefix_group(r["messages"], r["tools"]) for r in rows}) == 1
    assert prefix_group(rows[0]["messages"], rows[0]["tools"][:1]) != prefix_group(rows[0]["messages"], rows[0]["tools"])
