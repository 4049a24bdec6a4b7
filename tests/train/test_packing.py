"""Padding-free packing of examples with different prompt heads (calltune.train.packing): the packed
row computes the same loss and LoRA gradients as the examples one at a time, batches mix tool
lists, `auto` leaves single-tool-list data exactly as before, resume stays exact.

Tolerances: the packed row and the one-example-at-a-time reference run the same float32 math on the
same numbers; only the order of additions differs (matmuls over a longer row, SDPA/eager kernels
blocking differently, one cross-entropy sum instead of several). Masked scores contribute exactly 0
in both (exp(-inf), or exp(finfo.min - max), which underflows to 0). Measured here: loss relative
difference 7e-8, gradient difference at most 4e-6 of the tensor's largest entry (rounding grows
through the backward pass over 6 layers). We allow 2e-6 relative on the loss and, per element,
1e-4 * (max|grad| + |grad|) on the gradients: ~25x headroom for other CPUs' kernel blocking. A real
masking error is far outside that: a sliding window one token too wide moves the loss by 2e-3 and
the gradients by ~1.5x their largest entry; one example seeing another by 3e-3 and ~2x
(test_a_mask_error_is_caught checks the latter fails the comparison).
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from calltune.errors import InputError
from calltune.formats import get_format
from calltune.train.datasets import TokenizedExample, collate, length_grouped_batches, tokenize_split
from calltune.train.device import seed_everything
from calltune.train.lora import load_base_model, make_trainable, trainable_state
from calltune.train.loss import Packed, attention_masks, completion_loss, full_logits_loss
from calltune.train.packing import pack_examples, pack_helps, packed_batches, resolve_packing
from calltune.train.trainer import Trainer, TrainConfig
from train_helpers import canonical_rows, heterogeneous_rows, write_rows

CPU = torch.device("cpu")
LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["all-linear"]}


class Crash(Exception):
    pass


def random_examples(vocab: int, lengths, seed: int = 0) -> list[TokenizedExample]:
    """Examples with nothing in common: random ids, a target run at the end of each."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        answer = max(2, n // 4)
        out.append(TokenizedExample(str(i), tuple(ids), tuple([False] * (n - answer) + [True] * answer), f"g{i}"))
    return out


def lora_model(base_dir, **config):
    """The tiny Gemma with LoRA on every linear, lora_B non-zero so every adapter matrix gets a gradient."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **config)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def lora_grads(model, loss_fn) -> tuple[float, int, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss, n = loss_fn()
    (loss / n).backward()
    return float(loss.detach()), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def one_at_a_time(model, examples):
    """Reference: each example alone through the model's own forward (its own causal and sliding
    masks), the target cross entropies summed."""
    def run():
        parts = [full_logits_loss(model, collate([ex], pad_id=0)) for ex in examples]
        return sum(loss for loss, _ in parts), sum(n for _, n in parts)
    return run


def assert_same(ours, ref):
    loss, n, grads = ours
    ref_loss, ref_n, ref_grads = ref
    assert n == ref_n
    assert abs(loss - ref_loss) <= 2e-6 * abs(ref_loss), (loss, ref_loss)
    assert grads.keys() == ref_grads.keys() and any("lora_A" in k for k in grads)
    for name, grad in ref_grads.items():
        scale = float(grad.abs().max())
        assert scale > 0, name  # every adapter matrix really gets a gradient
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-4 * scale, msg=name)


CONFIGS = [{}, {"sliding_window": 4}, {"sliding_window": 4, "attn_implementation": "eager"},
           {"final_logit_softcapping": 5.0}]


@pytest.mark.parametrize("config", CONFIGS, ids=["sdpa", "sliding-window-4", "eager-sliding-window-4", "softcap"])
def test_packed_loss_and_lora_gradients_equal_one_example_at_a_time(tiny_gemma_dir, config):
    model = lora_model(tiny_gemma_dir, **config)
    examples = random_examples(model.config.vocab_size, [9, 23, 5, 17, 12])
    packed = pack_examples(examples)
    assert packed.n_tokens == sum(map(len, examples))
    ours = lora_grads(model, lambda: completion_loss(model, packed))
    assert_same(ours, lora_grads(model, one_at_a_time(model, examples)))


def test_a_mask_error_is_caught(tiny_gemma_dir):
    """The comparison above can fail: letting every token see the whole row before it (plain
    causal attention over the packed row) moves the loss far beyond the tolerance."""
    model = lora_model(tiny_gemma_dir, sliding_window=4)
    examples = random_examples(model.config.vocab_size, [9, 23, 5, 17, 12])
    packed = pack_examples(examples)
    leaky = Packed(packed.input_ids, packed.positions, torch.zeros_like(packed.segments), packed.targets)
    with pytest.raises(AssertionError):
        assert_same(lora_grads(model, lambda: completion_loss(model, leaky)),
                    lora_grads(model, one_at_a_time(model, examples)))


def test_packed_row_layout_and_block_diagonal_masks(tiny_gemma_dir):
    a = TokenizedExample("a", (5, 6, 7, 8), (False, False, True, True))
    b = TokenizedExample("b", (9, 3, 4), (True, False, True))  # a first-token target is dropped: nothing precedes it
    packed = pack_examples([a, b])
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9, 3, 4]]
    assert packed.positions.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert packed.segments.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert packed.targets.tolist() == [False, False, True, True, False, False, True]
    config = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, sliding_window=2).config
    masks = attention_masks(packed, config, torch.float32)
    full, sliding = masks["full_attention"][0, 0], masks["sliding_attention"][0, 0]
    assert full[3].tolist() == [True, True, True, True, False, False, False]  # a sees only a, causally
    assert full[6].tolist() == [False, False, False, False, True, True, True]  # b never sees a
    assert full[4].tolist() == [False, False, False, False, True, False, False]
    assert sliding[3].tolist() == [False, False, True, True, False, False, False]  # window 2 inside a
    assert sliding[6].tolist() == [False, False, False, False, False, True, True]
    eager = attention_masks(packed, AutoModelForCausalLM.from_pretrained(
        tiny_gemma_dir, attn_implementation="eager").config, torch.float32)
    assert eager["full_attention"].dtype == torch.float32 and float(eager["full_attention"][0, 0, 6, 0]) < -1e30


def test_packed_batches_cover_every_example_once_are_seeded_and_keep_the_budget():
    examples = random_examples(500, [5, 40, 7, 33, 12, 9, 41, 6, 30, 8, 11, 35, 20])
    batches = packed_batches(examples, batch_size=4, max_tokens=60, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    assert all(len(b) <= 4 for b in batches)
    assert all(sum(len(examples[i]) for i in b) <= 60 or len(b) == 1 for b in batches)
    assert batches == packed_batches(examples, 4, 60, seed=3, epoch=0)
    assert batches != packed_batches(examples, 4, 60, seed=3, epoch=1)
    # the count is the same every epoch (steps_per_epoch is planned from epoch 0)
    assert {len(packed_batches(examples, 4, 60, 3, e)) for e in range(6)} == {len(batches)}
    assert all(len(b) == 1 for b in length_grouped_batches(examples, 4, 3, 0))  # every example its own group
    unlimited = packed_batches(examples, batch_size=4, max_tokens=0, seed=3, epoch=0)
    assert sorted(map(len, unlimited)) == [1, 4, 4, 4]


@pytest.fixture(scope="module")
def hetero(tiny_gemma_dir, tmp_path_factory):
    """Canonical rows that each declare their own tools, tokenized as the train stage does."""
    tmp = tmp_path_factory.mktemp("packing-data")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    fmt = get_format("functiongemma")
    train, _ = tokenize_split(write_rows(tmp / "train.jsonl", heterogeneous_rows(12, seed=1)), fmt, tokenizer, 1024)
    valid, _ = tokenize_split(write_rows(tmp / "valid.jsonl", heterogeneous_rows(4, seed=2)), fmt, tokenizer, 1024)
    same, _ = tokenize_split(write_rows(tmp / "same.jsonl", canonical_rows(12, seed=1)), fmt, tokenizer, 1024)
    return train, valid, same


def make_trainer(base_dir, train, valid, seed=5, checkpoint_dir=None, callback=None, dropout=0.1, **cfg):
    """LoRA on q/v with dropout (random numbers in play, for resume) unless told otherwise."""
    seed_everything(seed)
    model = make_trainable(load_base_model(base_dir, "lora", torch.float32, CPU), "lora",
                           {**LORA, "dropout": dropout, "target_modules": ["q_proj", "v_proj"]})
    options = dict(lr=5e-3, warmup_steps=2, epochs=2, batch_size=4, grad_accum=1, eval_every=2, save_every=2,
                   seed=seed, packing=True, pack_tokens=0)
    options.update(cfg)
    return Trainer(model, train, valid, TrainConfig(**options), CPU, pad_id=0, checkpoint_dir=checkpoint_dir,
                   fingerprint="fp", progress=False, callback=callback)


def test_examples_with_different_tool_lists_share_a_batch(tiny_gemma_dir, hetero):
    train, valid, _ = hetero
    assert len({ex.group for ex in train}) == len(train)  # every row its own prompt head
    unpacked = make_trainer(tiny_gemma_dir, train, valid, packing=False)
    assert all(len(b) == 1 for step in unpacked.epoch_plan(0) for b in step)  # today: batches of one
    packed = make_trainer(tiny_gemma_dir, train, valid, packing="auto")
    assert packed.pack  # auto packs this data: grouped batches hold 1 example, 4 would fit
    batches = [b for step in packed.epoch_plan(0) for b in step]
    assert len(batches) == 3 and all(len({train[i].group for i in b}) == 4 for b in batches)
    assert isinstance(packed.batch(batches[0], train), Packed)
    packed = make_trainer(tiny_gemma_dir, train, valid, packing="auto", max_steps=2)
    summary = packed.fit()
    assert summary["packing"] and summary["examples_per_micro_batch"] == 4 and summary["steps"] == 2
    assert all(r["train_loss"] > 0 for r in summary["history"]) and summary["best_valid_loss"] > 0


def test_a_packed_step_equals_the_unpacked_steps_gradient(tiny_gemma_dir, hetero):
    """Through the trainer: one optimizer step on a packed row moves AdamW exactly as the same four
    examples as four accumulated micro-batches of one do (exp_avg = (1 - beta1) * gradient)."""
    train, valid, _ = hetero
    packed = make_trainer(tiny_gemma_dir, train, valid, grad_clip=0.0, dropout=0.0)
    unpacked = make_trainer(tiny_gemma_dir, train, valid, packing=False, grad_clip=0.0, grad_accum=4, dropout=0.0)
    one = packed.optimizer_step([[0, 1, 2, 3]])
    four = unpacked.optimizer_step([[0], [1], [2], [3]])
    assert one["train_loss"] == pytest.approx(four["train_loss"], rel=2e-6)
    for p_packed, p_plain in zip(packed.params, unpacked.params):
        a, b = packed.optimizer.state[p_packed]["exp_avg"], unpacked.optimizer.state[p_plain]["exp_avg"]
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_auto_on_one_tool_list_is_todays_batches_and_losses(tiny_gemma_dir, hetero):
    _, valid, same = hetero
    assert not pack_helps(same, 4, 5)
    auto = make_trainer(tiny_gemma_dir, same, valid, packing="auto", max_steps=3)
    assert not auto.pack
    a = auto.fit()  # each trainer is built (seeded) right before its run: dropout draws the same numbers
    today = make_trainer(tiny_gemma_dir, same, valid, packing=False, max_steps=3)
    b = today.fit()
    for epoch in range(3):
        assert auto.epoch_plan(epoch) == today.epoch_plan(epoch) == [
            [b] for b in length_grouped_batches(same, 4, 5, epoch)]
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert [r.get("valid_loss") for r in a["history"]] == [r.get("valid_loss") for r in b["history"]]
    assert not a["packing"]


def test_resume_mid_epoch_with_packing_continues_exactly(tiny_gemma_dir, hetero, tmp_path):
    train, valid, _ = hetero
    train = train[:8]
    options = dict(batch_size=3, pack_tokens=600, save_every=3, eval_every=4)  # token-limited rows: 2 examples, not 3
    straight = make_trainer(tiny_gemma_dir, train, valid, checkpoint_dir=tmp_path / "a", **options)
    assert straight.pack and straight.steps_per_epoch == 4
    full = straight.fit()
    crash = 7  # the newest checkpoint is step 6: the middle of the second epoch
    first = make_trainer(tiny_gemma_dir, train, valid, checkpoint_dir=tmp_path / "b",
                         callback=lambda r: (_ for _ in ()).throw(Crash) if r["step"] == crash else None, **options)
    with pytest.raises(Crash):
        first.fit()
    saved = json.loads((tmp_path / "b" / "step-0000006" / "state.json").read_text())
    assert (saved["epoch"], saved["chunk"]) == (1, 2)  # resumes inside an epoch of packed batches
    resumed_trainer = make_trainer(tiny_gemma_dir, train, valid, checkpoint_dir=tmp_path / "b", resume=True, **options)
    resumed = resumed_trainer.fit()
    assert resumed["steps"] == full["steps"] == straight.total_steps
    for a, b in zip(full["history"], resumed["history"]):
        assert a["step"] == b["step"]
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5
        assert abs(a.get("valid_loss", 0) - b.get("valid_loss", 0)) <= 1e-5
    final, again = trainable_state(straight.model), trainable_state(resumed_trainer.model)
    assert all(torch.allclose(final[k], again[k], atol=1e-6) for k in final)


def test_packing_true_needs_a_mask_taking_attention():
    examples = random_examples(500, [5, 6, 7])
    with pytest.raises(InputError) as err:
        resolve_packing(True, examples, 4, 0, supported=False)
    assert err.value.field == "train.packing"
    assert resolve_packing("auto", examples, 4, 0, supported=False) is False
    assert resolve_packing("auto", examples, 4, 0, supported=True) is True
    assert resolve_packing(False, examples, 4, 0, supported=True) is False


def test_padded_mode_mixes_prompt_heads_in_right_padded_batches(tiny_gemma_dir, hetero):
    """packing: padded forms packing's batches (across prompt heads) but pads them: no custom mask,
    and the same loss as the packed row (the same examples, the same function of the weights)."""
    train, valid, _ = hetero
    padded = make_trainer(tiny_gemma_dir, train, valid, packing="padded", grad_clip=0.0)
    packed = make_trainer(tiny_gemma_dir, train, valid, packing=True, grad_clip=0.0)
    assert padded.pack == "padded" and padded.epoch_plan(0) == packed.epoch_plan(0)
    batch = padded.batch([0, 1, 2, 3], train)
    assert not isinstance(batch, Packed) and batch.input_ids.shape[0] == 4
    assert padded.optimizer_step([[0, 1, 2, 3]])["train_loss"] == pytest.approx(
        packed.optimizer_step([[0, 1, 2, 3]])["train_loss"], rel=2e-6)
    assert resolve_packing("padded", train, 4, 0, supported=False) == "padded"  # needs no mask support
