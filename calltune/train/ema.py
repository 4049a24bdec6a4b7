"""An exponential moving average of the trained weights (Polyak averaging), `train.ema`.

With a few hundred rows a run's best validation step often falls while the learning rate is near its
peak, where each step moves the adapter a long way on a handful of examples. The average after step
t is a_t = d * a_(t-1) + (1 - d) * w_t over the trained weights w (a_0 = the starting weights), so
with decay d it remembers the last ~1 / (1 - d) steps. Training itself never sees the average: the
optimizer steps the raw weights exactly as without it. What the average changes is what is scored
and kept: validation passes (and so keep-best) run on the averaged weights, and the weights the run
ends with are the average's (at the best step, or the last).

The average is held in float32 beside the parameters, on their device; it is part of a checkpoint,
so a resumed run continues it exactly. Every process of a data-parallel run takes the same steps,
so every process holds the same average."""

from __future__ import annotations

import contextlib

import torch

from calltune.errors import InputError


def check_decay(decay: float) -> None:
    """The decay of an average (this one, or the MLX backend's) lies strictly between 0 and 1."""
    if not 0 < decay < 1:
        raise ValueError(f"decay must lie strictly between 0 and 1, not {decay}")


class WeightAverage:
    """The moving average of `named` parameters (name -> trainable tensor) with `decay` in (0, 1)."""

    def __init__(self, named: dict[str, torch.Tensor], decay: float):
        check_decay(decay)
        self.named, self.decay = named, decay
        self.average = {name: p.detach().float().clone() for name, p in named.items()}

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step: a <- d * a + (1 - d) * w."""
        for name, p in self.named.items():
            self.average[name].lerp_(p.detach().float(), 1 - self.decay)

    @contextlib.contextmanager
    def applied(self):
        """Within the block the parameters hold the average; on leaving, their own values again."""
        own = {name: p.detach().clone() for name, p in self.named.items()}
        self._copy_into_params(self.average)
        try:
            yield
        finally:
            self._copy_into_params(own)

    def apply(self) -> None:
        """The parameters take the average for good (the run's result when nothing was kept)."""
        self._copy_into_params(self.average)

    def state(self) -> dict[str, torch.Tensor]:
        """CPU copies for a checkpoint."""
        return {name: a.detach().to("cpu", copy=True) for name, a in self.average.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.average) - set(state))
        if missing:
            raise InputError(f"the checkpoint's weight average lacks {len(missing)} tensor(s), e.g. {missing[0]}")
        for name, a in self.average.items():
            a.copy_(state[name])

    @torch.no_grad()
    def _copy_into_params(self, values: dict[str, torch.Tensor]) -> None:
        for name, p in self.named.items():
            p.copy_(values[name])
