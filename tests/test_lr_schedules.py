"""LR schedules (pure functions of the global step) and the AdamW parameter groups."""
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from my_affectgpt.common.optims import ScheduleParams, build_optimizer
from my_affectgpt.common.registry import registry


def params(**overrides) -> ScheduleParams:
    values = dict(init_lr=1e-4, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=10, total_steps=110,
                  iters_per_epoch=20, lr_decay_rate=0.5)
    values.update(overrides)
    return ScheduleParams(**values)


def schedule(name):
    return registry.get_lr_scheduler_class(name)


def test_schedules_are_registered_under_config_names():
    names = {"linear_warmup_cosine_lr", "linear_warmup_step_lr", "warmup_cosine_lr", "warmup_step_lr", "constant"}
    assert names <= set(registry.names("lr_scheduler"))


@pytest.mark.parametrize("name", ["warmup_cosine_lr", "warmup_step_lr", "constant"])
def test_warmup_is_linear_from_warmup_lr_to_init_lr(name):
    p = params()
    lr = schedule(name)
    assert lr(0, p) == pytest.approx(1e-6)
    assert lr(5, p) == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5)
    assert lr(10, p) == pytest.approx(1e-4)


def test_cosine_reaches_min_lr_on_the_last_step_with_exact_midpoint():
    p = params(total_steps=111)  # decay over steps 10..110, a span of 100
    lr = schedule("warmup_cosine_lr")
    assert lr(p.total_steps - 1, p) == pytest.approx(p.min_lr)
    midpoint = p.warmup_steps + (p.total_steps - 1 - p.warmup_steps) / 2
    assert midpoint == int(midpoint)
    assert lr(int(midpoint), p) == pytest.approx((p.init_lr + p.min_lr) / 2)
    quarter = p.warmup_steps + (p.total_steps - 1 - p.warmup_steps) // 4
    progress = (quarter - p.warmup_steps) / (p.total_steps - 1 - p.warmup_steps)
    assert lr(quarter, p) == pytest.approx(p.min_lr + (p.init_lr - p.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))


def test_cosine_without_warmup_starts_at_init_lr_and_decreases_monotonically():
    p = params(warmup_steps=0)
    lr = schedule("warmup_cosine_lr")
    values = [lr(s, p) for s in range(p.total_steps)]
    assert values[0] == pytest.approx(p.init_lr)
    assert values[-1] == pytest.approx(p.min_lr)
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_step_schedule_decays_per_epoch_and_floors_at_min_lr():
    p = params(warmup_steps=0, lr_decay_rate=0.5, min_lr=2e-5)
    lr = schedule("warmup_step_lr")
    assert lr(0, p) == pytest.approx(1e-4)
    assert lr(19, p) == pytest.approx(1e-4)
    assert lr(20, p) == pytest.approx(5e-5)
    assert lr(40, p) == pytest.approx(2.5e-5)
    assert lr(60, p) == pytest.approx(2e-5)  # 1.25e-5 is below min_lr


def test_original_cosine_is_one_epoch_ahead_and_turns_up_in_the_last_epoch():
    # The original runner passed its 1-based epoch e: its step was e * iters_per_epoch + i.
    p = params(warmup_steps=0, total_steps=100, iters_per_epoch=20)
    lr = schedule("linear_warmup_cosine_lr")
    def cosine(progress):
        return p.min_lr + (p.init_lr - p.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    assert lr(0, p) == pytest.approx(cosine(20 / 100))  # first step of epoch 1
    assert lr(79, p) == pytest.approx(cosine(99 / 100))
    assert lr(80, p) == pytest.approx(p.min_lr)  # epoch 5 starts where the cosine ends ...
    assert lr(99, p) > lr(80, p)  # ... and climbs back during it


def test_original_cosine_warms_up_only_beyond_one_epoch_from_the_in_epoch_index():
    lr = schedule("linear_warmup_cosine_lr")
    one_epoch = params(warmup_steps=20, iters_per_epoch=20, total_steps=100)
    assert lr(0, one_epoch) == pytest.approx(lr(0, params(warmup_steps=0, iters_per_epoch=20, total_steps=100)))
    three_epochs = params(warmup_steps=60, iters_per_epoch=20, total_steps=100, warmup_lr=0.0)
    assert lr(0, three_epochs) == pytest.approx(0.0)  # step 20 < 60: warmup from index 0
    assert lr(39, three_epochs) == pytest.approx(1e-4 * 19 / 60)  # step 59, index 19
    assert lr(40, three_epochs) == pytest.approx(0.5 * (1e-4 + 1e-5) + 0.5 * (1e-4 - 1e-5) * math.cos(math.pi * 0.6))


def test_original_configs_constant_learning_rate_is_kept():
    # init_lr == min_lr and warmup_steps == iters_per_epoch, as in the original training configs
    p = params(init_lr=1e-5, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=20, iters_per_epoch=20, total_steps=100)
    assert [schedule("linear_warmup_cosine_lr")(s, p) for s in range(100)] == pytest.approx([1e-5] * 100)


def test_original_step_schedule_decays_once_before_the_first_step():
    p = params(warmup_steps=10, lr_decay_rate=0.5, min_lr=2e-5)
    lr = schedule("linear_warmup_step_lr")
    assert lr(0, p) == pytest.approx(5e-5)  # init_lr * 0.5 ** 1, no warmup
    assert lr(20, p) == pytest.approx(2.5e-5)
    assert lr(40, p) == pytest.approx(2e-5)


def test_constant_is_init_lr_after_warmup():
    p = params()
    lr = schedule("constant")
    assert {lr(s, p) for s in range(10, 110)} == {1e-4}


def test_schedule_params_from_run_config():
    run = OmegaConf.create(dict(init_lr=1e-3, min_lr=0.0, warmup_lr=0.0, warmup_steps=5, max_epoch=3,
                                iters_per_epoch=7, lr_decay_rate=0.1))
    p = ScheduleParams.from_run(run)
    assert p.total_steps == 21 and p.iters_per_epoch == 7 and p.init_lr == 1e-3


def test_adamw_groups_exclude_biases_norms_and_frozen_params():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    model[2].weight.requires_grad_(False)
    run = OmegaConf.create(dict(init_lr=1e-3, weight_decay=0.05, beta2=0.95))
    optimizer = build_optimizer(model, run)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [p is model[0].weight for p in decay["params"]] == [True]
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
    assert decay["betas"] == (0.9, 0.95) and decay["lr"] == 1e-3


def test_optimizer_refuses_a_model_without_trainable_parameters():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, OmegaConf.create(dict(init_lr=1e-3, weight_decay=0.0, beta2=0.999)))
