"""Learning-rate schedules and the AdamW optimizer.

A schedule is a pure function ``lr = schedule(step, params)`` of the global step
``step = (epoch - 1) * iters_per_epoch + i`` (epochs numbered from 1, ``step`` and ``i``
counted from 0). The runner sets the learning rate from it at every iteration, so a resumed
run lands on exactly the value it would have had, with no scheduler state to save beyond the
schedule's name. Schedules are registered in the ``lr_scheduler`` bucket under the names
configs use in ``run.lr_sched``.

Two families:

- ``linear_warmup_cosine_lr`` and ``linear_warmup_step_lr`` compute, value for value, what
  the original AffectGPT runner computed under those names. It fed its 1-based epoch number
  into formulas written for 0-based epochs, so its curve is shifted by one epoch: the cosine
  starts one epoch in and turns back up during the last epoch, the step schedule decays once
  before the first step, and warmup only happens where ``warmup_steps`` exceeds one epoch
  (then restarting at every epoch boundary inside the warmup). With the original configs'
  ``min_lr == init_lr`` and ``warmup_steps == iters_per_epoch`` this is a constant ``init_lr``.
- ``warmup_cosine_lr``, ``warmup_step_lr`` and ``constant`` are what those names were meant
  to be: a linear warmup from ``warmup_lr`` (step 0) to ``init_lr`` (step ``warmup_steps``;
  none with ``warmup_steps: 0``), then the schedule from the first step after it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from my_affectgpt.common.registry import registry


@dataclass(frozen=True)
class ScheduleParams:
    init_lr: float
    min_lr: float
    warmup_lr: float
    warmup_steps: int
    total_steps: int
    iters_per_epoch: int
    lr_decay_rate: float

    @classmethod
    def from_run(cls, run) -> "ScheduleParams":
        """Read the schedule keys of a ``run`` config section."""
        return cls(
            init_lr=run.init_lr,
            min_lr=run.min_lr,
            warmup_lr=run.warmup_lr,
            warmup_steps=run.warmup_steps,
            total_steps=run.max_epoch * run.iters_per_epoch,
            iters_per_epoch=run.iters_per_epoch,
            lr_decay_rate=run.lr_decay_rate,
        )


# The original AffectGPT's schedule names (its one-epoch-shifted arithmetic) -> the schedule
# that does what the name says.
ORIGINAL_SCHEDULES = {"linear_warmup_cosine_lr": "warmup_cosine_lr", "linear_warmup_step_lr": "warmup_step_lr"}


def _warmup_lr(step: int, p: ScheduleParams) -> float:
    return p.warmup_lr + (p.init_lr - p.warmup_lr) * step / p.warmup_steps


def _cosine(progress: float, p: ScheduleParams) -> float:
    return p.min_lr + (p.init_lr - p.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@registry.register_lr_scheduler("linear_warmup_cosine_lr")
def linear_warmup_cosine_lr(step: int, p: ScheduleParams) -> float:
    """The original AffectGPT's cosine schedule. Its global step was its 1-based epoch times
    ``iters_per_epoch`` plus the in-epoch index; below ``warmup_steps`` it warmed up from the
    in-epoch index, above it took the cosine of that step over ``total_steps``."""
    original_step = step + p.iters_per_epoch
    if original_step < p.warmup_steps:
        return min(p.init_lr, _warmup_lr(step % p.iters_per_epoch, p))
    return _cosine(original_step / p.total_steps, p)


@registry.register_lr_scheduler("linear_warmup_step_lr")
def linear_warmup_step_lr(step: int, p: ScheduleParams) -> float:
    """The original AffectGPT's step schedule: ``init_lr * lr_decay_rate ** epoch`` (1-based
    epoch), never below ``min_lr``; its warmup branch (epoch 0) is never reached."""
    epoch = step // p.iters_per_epoch + 1
    return max(p.min_lr, p.init_lr * p.lr_decay_rate**epoch)


@registry.register_lr_scheduler("warmup_cosine_lr")
def warmup_cosine_lr(step: int, p: ScheduleParams) -> float:
    """Warmup, then cosine from ``init_lr`` (step ``warmup_steps``) to ``min_lr`` (last step)."""
    if step < p.warmup_steps:
        return _warmup_lr(step, p)
    decay_steps = max(1, p.total_steps - 1 - p.warmup_steps)
    return _cosine(min(1.0, (step - p.warmup_steps) / decay_steps), p)


@registry.register_lr_scheduler("warmup_step_lr")
def warmup_step_lr(step: int, p: ScheduleParams) -> float:
    """Warmup, then ``init_lr * lr_decay_rate ** (epoch - 1)``, never below ``min_lr``."""
    if step < p.warmup_steps:
        return _warmup_lr(step, p)
    epochs_done = step // p.iters_per_epoch
    return max(p.min_lr, p.init_lr * p.lr_decay_rate**epochs_done)


@registry.register_lr_scheduler("constant")
def constant(step: int, p: ScheduleParams) -> float:
    """Warmup, then ``init_lr``."""
    if step < p.warmup_steps:
        return _warmup_lr(step, p)
    return p.init_lr


def _decays(name: str, param) -> bool:
    """Weight decay applies to matrices only: not to biases, norm weights or other 1-D params."""
    return param.ndim >= 2 and not name.endswith(".bias") and "norm" not in name.lower()


def build_optimizer(model, run):
    """AdamW over the trainable parameters of ``model``, in a decay and a no-decay group."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if _decays(name, param) else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError(
            "the model has no trainable parameters (all have requires_grad=False); "
            "check the model's frozen_* / use_lora settings"
        )
    groups = [
        {"params": decay, "weight_decay": run.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=run.init_lr, betas=(0.9, run.beta2)
    )
