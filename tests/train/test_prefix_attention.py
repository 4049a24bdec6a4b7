"""Split attention for shared-head packed rows (calltune.train.prefix_attention) equals the dense
masked attention it replaces: hidden states and gradients, full and sliding-window layers, heads
shorter and longer than the window, tails of different lengths."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from calltune.train import prefix_attention
from calltune.train.datasets import TokenizedExample, collate
from calltune.train.loss import attention_masks, pack_shared_prefix, packed_hidden, splits_attention


def _packed(vocab: int, head: int, tails: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randint(3, vocab, (head,), generator=g).tolist()
    examples = []
    for i, n in enumerate(tails):
        ids = shared + torch.randint(3, vocab, (n,), generator=g).tolist()
        examples.append(TokenizedExample(str(i), tuple(ids), (False,) * (len(ids) - 2) + (True, True)))
    return pack_shared_prefix(collate(examples, pad_id=0), head)


def _dense_hidden(body, packed):
    masks = attention_masks(packed, body.config, torch.float32)
    return body(input_ids=packed.input_ids, attention_mask=masks, position_ids=packed.positions,
                use_cache=False).last_hidden_state


def _hidden_and_grads(model, hidden_fn, packed):
    model.zero_grad()
    body = model.get_decoder()
    hidden = hidden_fn(body, packed)
    (hidden.float().pow(2).mean()).backward()
    return hidden.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("window, head, tails", [
    (8, 48, [5, 17, 1, 9]),      # head longer than the window: band mask on the head, tails reach 7 head keys
    (64, 48, [5, 17, 30, 9]),    # head inside the window, the longest tail runs past it
    (40, 48, [3, 3, 3]),         # tails of one length (no padding)
    (4096, 20, [12, 2]),         # the window never binds
])
def test_split_attention_equals_the_dense_mask(tiny_gemma_dir, window, head, tails):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32, sliding_window=window)
    packed = _packed(model.config.vocab_size, head, tails)
    assert splits_attention(model.get_decoder(), packed)
    ours, ours_grads = _hidden_and_grads(model, packed_hidden, packed)
    ref, ref_grads = _hidden_and_grads(model, _dense_hidden, packed)
    assert model.config._attn_implementation == "sdpa"  # switched back after the call
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert ours_grads.keys() == ref_grads.keys() and ours_grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_layout_of_a_small_row():
    # head of 3, tails of 2 and 1 tokens: row positions 3-4 and 5
    segments = torch.tensor([-1, -1, -1, 0, 0, 1])
    positions = torch.tensor([0, 1, 2, 3, 4, 3])
    full, sliding = (prefix_attention.layouts(segments, positions, window=2)[k]
                     for k in ("full_attention", "sliding_attention"))
    assert full.prefix == 3 and full.valid.tolist() == [[True, True], [True, False]]
    assert full.gather.tolist() == [0, 1, 2, 0]  # slot (1, 1) is padding, filled from the first tail token
    assert full.key_start == 0 and full.head_mask is None
    # tail 0, slot 1 (position 4): the whole head, then its own two tokens causally
    assert full.tail_mask[0, 0, 1].tolist() == [True, True, True, True, True]
    assert full.tail_mask[0, 0, 0].tolist() == [True, True, True, True, False]
    assert full.tail_mask[1, 0, 0].tolist() == [True, True, True, True, False]  # its padding key hidden
    # window 2: a tail sees head keys from position 3 - 2 + 1 = 2 on, and only keys 1 step back
    assert sliding.key_start == 2
    assert sliding.tail_mask[0, 0, 0].tolist() == [True, True, False]  # position 3: head key 2, itself
    assert sliding.tail_mask[0, 0, 1].tolist() == [False, True, True]  # position 4: itself and 3 only
    assert sliding.head_mask.tolist() == [[True, False, False], [True, True, False], [False, True, True]]


def test_dense_path_where_the_split_does_not_apply(tiny_gemma_dir):
    packed = _packed(1024, 40, [4, 6])
    eager = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32, attn_implementation="eager")
    assert not splits_attention(eager.get_decoder(), packed)
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    model.gradient_checkpointing_enable()
    assert not splits_attention(model.get_decoder(), packed)
    no_head = type(packed)(packed.input_ids, packed.positions, packed.segments.clamp(min=0), packed.targets)
    assert not splits_attention(AutoModelForCausalLM.from_pretrained(tiny_gemma_dir).get_decoder(), no_head)


def test_no_dropout_or_softcap():
    with pytest.raises(ValueError, match="dropout"):
        prefix_attention.prefix_attention(None, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                                          torch.zeros(1, 1, 2, 2), None, dropout=0.1)
