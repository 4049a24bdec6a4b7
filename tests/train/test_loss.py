"""The completion-only loss (LM head at target rows only, shared prompt head) equals the masked
full-logits loss, in value and in gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from calltune.train.datasets import TokenizedExample, collate
from calltune.train.loss import (MIN_SHARED_PREFIX, attention_masks, completion_loss, full_logits_loss,
                                 pack_shared_prefix, shared_prefix_len)


def _batch(vocab: int, head: int = 48, rows: int = 4, seed: int = 0):
    """Rows sharing a `head`-token prefix, then a user part and a target part of varied lengths."""
    g = torch.Generator().manual_seed(seed)
    shared = torch.randint(3, vocab, (head,), generator=g).tolist()
    examples = []
    for i in range(rows):
        user = torch.randint(3, vocab, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        answer = torch.randint(3, vocab, (int(torch.randint(2, 8, (1,), generator=g)),), generator=g).tolist()
        ids = shared + user + answer
        examples.append(TokenizedExample(str(i), tuple(ids),
                                         tuple([False] * (len(ids) - len(answer)) + [True] * len(answer))))
    return collate(examples, pad_id=0)


def _model(path, **config):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **config)


def _grads(model, loss_fn, batch):
    model.zero_grad()
    loss, n = loss_fn(model, batch)
    (loss / n).backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("share_prefix", [False, True])
@pytest.mark.parametrize("config", [{}, {"sliding_window": 8}, {"final_logit_softcapping": 5.0},
                                    {"sliding_window": 8, "attn_implementation": "eager"}],
                         ids=["plain", "short-sliding-window", "softcap", "eager-attention"])
def test_completion_loss_equals_masked_full_logits_loss(tiny_gemma_dir, share_prefix, config):
    model = _model(tiny_gemma_dir, **config)
    batch = _batch(model.config.vocab_size)
    assert shared_prefix_len(batch) == 48  # the shared-head path really runs when share_prefix is on
    ours, ours_grads = _grads(model, lambda m, b: completion_loss(m, b, share_prefix), batch)
    ref, ref_grads = _grads(model, full_logits_loss, batch)
    assert abs(float(ours) - float(ref)) <= 1e-5 * max(1.0, abs(float(ref)))
    assert ours_grads.keys() == ref_grads.keys()
    for name, grad in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_softcap_is_applied(tiny_gemma_dir):
    batch = _batch(1024)
    with torch.no_grad():
        plain = completion_loss(_model(tiny_gemma_dir), batch)[0]
        capped = completion_loss(_model(tiny_gemma_dir, final_logit_softcapping=0.5), batch)[0]
    assert abs(float(plain) - float(capped)) > 1e-3


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_completion_loss_on_llama(tiny_llama_dir, attention):
    model = _model(tiny_llama_dir, attn_implementation=attention)
    batch = _batch(model.config.vocab_size, rows=3, seed=3)
    assert shared_prefix_len(batch) == 48
    with torch.no_grad():
        ours, n = completion_loss(model, batch)
        ref, m = full_logits_loss(model, batch)
    assert n == m == batch.n_targets
    assert abs(float(ours) - float(ref)) <= 1e-5 * abs(float(ref))


def test_packed_row_layout_and_masks(tiny_gemma_dir):
    batch = collate([TokenizedExample("a", (5, 6, 7, 8, 9), (False,) * 4 + (True,)),
                     TokenizedExample("b", (5, 6, 7, 3), (False, False, False, True))], pad_id=0)
    packed = pack_shared_prefix(batch, 2)
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9, 7, 3]]
    assert packed.positions.tolist() == [[0, 1, 2, 3, 4, 2, 3]]
    assert packed.segments.tolist() == [-1, -1, 0, 0, 0, 1, 1]
    config = _model(tiny_gemma_dir, sliding_window=2).config
    masks = attention_masks(packed, config, torch.float32)
    full, sliding = masks["full_attention"][0, 0], masks["sliding_attention"][0, 0]
    assert full[6].tolist() == [True, True, False, False, False, True, True]  # b's tail: head + itself
    assert full[4].tolist() == [True, True, True, True, True, False, False]  # a's tail never sees b's
    assert sliding[6].tolist() == [False, False, False, False, False, True, True]  # positions 2..3 only


def test_shared_prefix_stops_before_the_first_target_context():
    head = MIN_SHARED_PREFIX + 10
    batch = _batch(500, head=head)
    assert shared_prefix_len(batch) == head  # rows diverge right after the shared head
    # a row whose target starts at the shared head's end caps the prefix one before it
    ids = list(batch.input_ids[0, :head].tolist()) + [7, 8, 9]
    early = TokenizedExample("e", tuple(ids), tuple([False] * head + [True] * 3))
    rows = [TokenizedExample(str(i), tuple(batch.input_ids[i, : int(batch.lengths[i])].tolist()),
                    tuple(batch.targets[i, : int(batch.lengths[i])].tolist())) for i in range(2)]
    assert shared_prefix_len(collate(rows + [early], 0)) == head - 1


def test_no_prefix_sharing_for_one_row_or_a_short_head():
    assert shared_prefix_len(_batch(500, rows=1)) == 0
    assert shared_prefix_len(_batch(500, head=MIN_SHARED_PREFIX - 1)) == 0
