"""The AffectGPT training task (``run.task: video_text_pretrain``)."""
from __future__ import annotations

import logging
from typing import Dict

from my_affectgpt.common.errors import UserError
from my_affectgpt.common.registry import registry
from my_affectgpt.datasets.collate import raise_failed
from my_affectgpt.models.trained_weights import warm_start

logger = logging.getLogger("my_affectgpt")


@registry.register_task("video_text_pretrain")
class VideoTextPretrainTask:
    """Builds the model named by ``model.arch`` and a builder per dataset block; a training
    step is the model's loss."""

    def __init__(self, registry_=registry):
        self.registry = registry_
        self.skipped_samples = 0

    def build_model(self, cfg):
        """The model for ``cfg``, warm-started from ``model.ckpt``, ``ckpt_2``, ``ckpt_3``."""
        model = self.registry.get_model_class(cfg.model.arch).from_config(cfg)
        warm_start(model, cfg.model)
        return model

    def build_datasets(self, cfg) -> Dict[str, Dict]:
        if not cfg.datasets:
            raise UserError("the config has no datasets: add a datasets: section (e.g. datasets: {demo: {...}})")
        return {name: self.registry.get_builder_class(name)(cfg, name).build() for name in cfg.datasets}

    def train_step(self, model, batch):
        """The batch's loss, or None when no sample is left in it. Samples dropped under
        ``run.on_bad_sample: skip`` are counted and logged; the runner neither logs nor averages a
        batch without samples, and keeps DDP ranks in step through it."""
        raise_failed(batch)
        for reason in batch.get("skipped", ()):
            self.skipped_samples += 1
            logger.warning("skipped sample (run.on_bad_sample: skip), %d so far: %s", self.skipped_samples, reason)
        if not batch["names"]:
            return None
        return model(batch)["loss"]
