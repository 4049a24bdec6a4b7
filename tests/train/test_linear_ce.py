"""The fused head + cross entropy equals the plain one: loss, row gradients and (trainable head)
weight gradients, for any chunk size, with and without the soft-cap; validation computes the loss only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calltune.train.linear_ce import fusable_head, linear_cross_entropy


def _inputs(dtype=torch.float32, rows=37, hidden=16, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, hidden, generator=g).to(dtype)
    w = (torch.randn(vocab, hidden, generator=g) * 0.5).to(dtype)
    labels = torch.randint(0, vocab, (rows,), generator=g)
    return x, w, labels


def _plain(x, w, labels, softcap):
    logits = (x @ w.T).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, labels, reduction="sum")


def _run(fn, x, w, labels, softcap, train_weight):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(train_weight)
    loss = fn(x, w, labels, softcap)
    (loss * 0.37).backward()  # a scale, as the trainer's 1/n_targets
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize("chunk_rows", [1, 5, 128])
@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("train_weight", [False, True])
def test_equals_plain_cross_entropy(chunk_rows, softcap, train_weight):
    x, w, labels = _inputs()
    ref = _run(_plain, x, w, labels, softcap, train_weight)
    ours = _run(lambda *a: linear_cross_entropy(*a, chunk_rows=chunk_rows), x, w, labels, softcap, train_weight)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-5, atol=1e-6)
    if train_weight:
        torch.testing.assert_close(ours[2], ref[2], rtol=1e-5, atol=1e-6)
    else:
        assert ours[2] is None


def test_bf16_within_one_rounding_of_plain():
    """bf16 rows and head, as on the CPU: the same loss to float32 rounding, gradients within a
    bf16 rounding step (the plain path scales before the cast to bf16, the fused one after)."""
    x, w, labels = _inputs(torch.bfloat16, rows=64, hidden=32, vocab=2000)
    ref_loss, ref_grad, _ = _run(_plain, x, w, labels, None, False)
    loss, grad, _ = _run(linear_cross_entropy, x, w, labels, None, False)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(grad.float(), ref_grad.float(), rtol=2 ** -7, atol=2 ** -8)


def test_no_grad_computes_the_loss_only():
    x, w, labels = _inputs()
    with torch.no_grad():
        loss = linear_cross_entropy(x.requires_grad_(True), w, labels)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, _plain(x.detach(), w, labels, None), rtol=1e-6, atol=1e-5)


def test_which_heads_fuse():
    assert fusable_head(torch.nn.Linear(4, 8, bias=False))
    assert not fusable_head(torch.nn.Linear(4, 8, bias=True))  # a bias is not part of the fused pass
    assert not fusable_head(torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False)))
