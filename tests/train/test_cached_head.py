"""The shared head cached without gradient (calltune.train.cached_head, train.prompt_grad: false):
the same loss as the packed row, and the packed row's gradient less every path through the head
(the reference detaches the head positions' key and value projections in every layer: the only
way a tail sees the head). Full and sliding-window layers, heads shorter and longer than the
window, tails of different lengths, eager and SDPA attention."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from calltune.train import cached_head
from calltune.train.datasets import TokenizedExample, collate
from calltune.train.loss import completion_loss, shared_prefix_len


def _batch(vocab: int, head: int, tails: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randint(3, vocab, (head,), generator=g).tolist()
    examples = []
    for i, n in enumerate(tails):
        ids = shared + torch.randint(3, vocab, (n,), generator=g).tolist()
        n_targets = max(1, n // 2)
        examples.append(TokenizedExample(str(i), tuple(ids), (False,) * (len(ids) - n_targets) + (True,) * n_targets))
    return collate(examples, pad_id=0)


def _loss_and_grads(model, batch, prompt_grad: bool):
    model.zero_grad()
    loss, n = completion_loss(model, batch, prompt_grad=prompt_grad)
    loss.backward()
    return loss.detach(), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _detach_head_keys_and_values(model, prefix: int):
    """Hooks that cut the head positions' keys (after Gemma's key norm: [B, heads, L, D]) and values
    ([B, L, heads * D]) off the graph in every layer."""
    def cut(dim):
        def hook(_module, _inputs, out):
            return torch.cat([out.narrow(dim, 0, prefix).detach(), out.narrow(dim, prefix, out.shape[dim] - prefix)],
                             dim=dim)
        return hook

    hooks = []
    for layer in model.get_decoder().layers:
        hooks.append(layer.self_attn.k_norm.register_forward_hook(cut(2)))
        hooks.append(layer.self_attn.v_proj.register_forward_hook(cut(1)))
    return hooks


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("window, head, tails", [
    (8, 48, [5, 17, 2, 9]),      # head longer than the window: a sliding layer's cache keeps its last 7
    (64, 48, [5, 17, 30, 9]),    # head inside the window, the longest tail runs past it
    (4096, 40, [6, 6, 6]),       # the window never binds; tails of one length
])
def test_cached_head_is_the_packed_row_without_the_heads_gradient(tiny_gemma_dir, attn, window, head, tails):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32, sliding_window=window,
                                                 attn_implementation=attn)
    model.train()
    batch = _batch(model.config.vocab_size, head, tails)
    prefix = shared_prefix_len(batch)
    assert prefix == head and cached_head.supports(model.get_decoder())

    ours, n, ours_grads = _loss_and_grads(model, batch, prompt_grad=False)
    full, n_full, full_grads = _loss_and_grads(model, batch, prompt_grad=True)
    hooks = _detach_head_keys_and_values(model, prefix)
    try:  # on the packed row (not split: a hook sees the whole row), the head's keys and values cut off
        ref, n_ref, ref_grads = _loss_and_grads(model, batch, prompt_grad=True)
    finally:
        for hook in hooks:
            hook.remove()

    assert n == n_full == n_ref == sum(max(1, t // 2) for t in tails)
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert ours_grads.keys() == ref_grads.keys() and ours_grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    # and it is a different gradient: the head's share is really left out
    assert any(not torch.allclose(ours_grads[k], full_grads[k], rtol=1e-3, atol=1e-6) for k in full_grads)


def test_evaluation_and_unshared_batches_take_the_usual_path(tiny_gemma_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    batch = _batch(model.config.vocab_size, 48, [5, 9])
    with torch.no_grad():  # validation: one forward either way, the packed row's
        a, _ = completion_loss(model, batch, prompt_grad=False)
        b, _ = completion_loss(model, batch, prompt_grad=True)
    assert torch.equal(a, b)
    single = _batch(model.config.vocab_size, 48, [5])  # one row: no shared head to cache
    assert shared_prefix_len(single) == 0
    torch.testing.assert_close(completion_loss(model, single, prompt_grad=False)[0],
                               completion_loss(model, single, prompt_grad=True)[0])


def test_unsupported_bodies_fall_back(tiny_gemma_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    body = model.get_decoder()
    assert cached_head.supports(body)
    body.config.attn_logit_softcapping = 30.0
    assert not cached_head.supports(body)
    body.config.attn_logit_softcapping = None
    body.gradient_checkpointing = True
    assert not cached_head.supports(body)
