"""The LM head and the cross entropy in one pass over chunks of target rows (Liger's fused linear
cross entropy, written for calltune's CPU step).

Gemma's head maps each target row to 262k logits. Done plainly (head, `.float()`, `cross_entropy`,
then autograd), a starter batch of ~570 target rows materialises its logits several times over
(~600 MB each in float32: the cast, the log-softmax, its gradient) and walks them in separate
passes; on 2 CPU cores that was ~18% of a training step (a profile: the log-softmax ~11%, the
copies ~7%; the measured saving was 19%). Here the forward pass takes the rows a
chunk at a time: logits, their log-sum-exp, the loss, and right away the gradient of the loss with
respect to the chunk's hidden rows (softmax minus the one-hot label, through the soft-cap if there
is one, times the head's weight). Only that small [rows, hidden] gradient is kept for backward,
which just scales it by the incoming gradient. The same function as `F.cross_entropy(head(rows)
.float(), labels, reduction="sum")`, gradients included (tests/train/test_linear_ce.py); a trainable
head (full fine-tuning) gets its weight gradient accumulated the same way.
"""

from __future__ import annotations

import torch

CHUNK_ROWS = 128  # target rows per chunk: 128 x 262k float32 logits = 134 MB of scratch at a time


class LinearCrossEntropy(torch.autograd.Function):
    """sum over rows of cross_entropy(softcap(rows @ weight.T), labels); see the module docstring."""

    @staticmethod
    def forward(ctx, rows, weight, labels, softcap, chunk_rows, want_grad):
        loss = torch.zeros((), dtype=torch.float32, device=rows.device)
        grad_rows = torch.empty_like(rows) if want_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
            if want_grad and ctx.needs_input_grad[1] else None
        for start in range(0, rows.shape[0], chunk_rows):
            part, label = rows[start:start + chunk_rows], labels[start:start + chunk_rows]
            index = torch.arange(part.shape[0], device=rows.device)
            logits = (part @ weight.T).float()  # the head in the weights' dtype, as nn.Linear would
            if softcap:
                capped = torch.tanh(logits / softcap)
                logits = capped * softcap
            lse = torch.logsumexp(logits, dim=-1)
            loss += (lse - logits[index, label]).sum()
            if grad_rows is None:
                continue
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            grad[index, label] -= 1.0
            if softcap:
                grad.mul_(1.0 - capped.square_())
            grad = grad.to(weight.dtype)
            grad_rows[start:start + chunk_rows] = grad @ weight
            if grad_weight is not None:
                grad_weight.addmm_(grad.T.float(), part.float())
        empty = torch.empty(0)
        ctx.save_for_backward(grad_rows if grad_rows is not None else empty,
                              grad_weight if grad_weight is not None else empty)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_rows, grad_weight = ctx.saved_tensors
        rows = grad_rows * grad_loss.to(grad_rows.dtype) if ctx.needs_input_grad[0] else None
        weight = (grad_weight * grad_loss).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        return rows, weight, None, None, None, None


def linear_cross_entropy(rows: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         softcap: float | None = None, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Summed cross entropy of `labels` under logits softcap(rows @ weight.T), computed in chunks.
    Under no_grad (validation) only the loss is computed."""
    want_grad = torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad)
    return LinearCrossEntropy.apply(rows, weight, labels, softcap, chunk_rows, want_grad)


def fusable_head(head: torch.nn.Module) -> bool:
    """A plain bias-free linear head (Gemma's, tied to the embeddings) can be fused."""
    return type(head) is torch.nn.Linear and head.bias is None
