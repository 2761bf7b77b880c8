"""Learning-rate schedules and the AdamW optimizer.

A schedule is a pure function ``lr = schedule(step, params)`` of the global step
``s = (epoch - 1) * iters_per_epoch + i`` (epochs numbered from 1, ``s`` and ``i`` counted
from 0). The runner sets the learning rate from it
at every iteration, so a resumed run lands on exactly the value it would have had, with no
scheduler state to save beyond the schedule's name. Schedules are registered in the
``lr_scheduler`` bucket under the names configs use in ``run.lr_sched``.

Every schedule starts with the same linear warmup from ``warmup_lr`` (step 0) to ``init_lr``
(step ``warmup_steps``); with ``warmup_steps: 0`` there is none.
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


def _warmup_lr(step: int, p: ScheduleParams) -> float:
    return p.warmup_lr + (p.init_lr - p.warmup_lr) * step / p.warmup_steps


@registry.register_lr_scheduler("linear_warmup_cosine_lr")
def linear_warmup_cosine_lr(step: int, p: ScheduleParams) -> float:
    """Warmup, then cosine from ``init_lr`` (step ``warmup_steps``) to ``min_lr`` (last step)."""
    if step < p.warmup_steps:
        return _warmup_lr(step, p)
    decay_steps = max(1, p.total_steps - 1 - p.warmup_steps)
    progress = min(1.0, (step - p.warmup_steps) / decay_steps)
    return p.min_lr + (p.init_lr - p.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@registry.register_lr_scheduler("linear_warmup_step_lr")
def linear_warmup_step_lr(step: int, p: ScheduleParams) -> float:
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
