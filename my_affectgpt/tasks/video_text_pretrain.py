"""The AffectGPT training task (``run.task: video_text_pretrain``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

from my_affectgpt.common.registry import registry

logger = logging.getLogger("my_affectgpt")

WARM_START_KEYS = ("ckpt", "ckpt_2", "ckpt_3")


def load_trained_weights(model, path: Path, strict: bool = True):
    """Load trainable weights from a runner checkpoint file or an exported folder; returns the
    ``(missing, unexpected)`` weight names (an exported folder must match exactly)."""
    path = Path(path)
    if path.is_dir():
        model.load_export(path)
        return [], []
    from my_affectgpt.common.checkpoint import load_checkpoint

    return model.load_trainable_state_dict(load_checkpoint(path)["model"], strict=strict)


@registry.register_task("video_text_pretrain")
class VideoTextPretrainTask:
    def __init__(self, registry_=registry):
        self.registry = registry_
        self.skipped_samples = 0

    def build_model(self, cfg, dataset_cfgs: Optional[Dict] = None, au_realtime: bool = False):
        """The model for ``cfg.model``, warm-started from ``model.ckpt``, ``ckpt_2``, ``ckpt_3``.

        ``dataset_cfgs`` (default ``cfg.datasets``) tell the model which modalities prompts use;
        ``au_realtime`` is ``inference.use_au_clip_realtime`` at inference time.
        """
        model_cls = self.registry.get_model_class(cfg.model.arch)
        extra = {"au_realtime": True} if au_realtime else {}  # only AffectGPT has an AU channel
        model = model_cls.from_config(cfg.model, cfg.datasets if dataset_cfgs is None else dataset_cfgs, **extra)
        for key in WARM_START_KEYS:
            path = cfg.model[key]
            if not path:
                continue
            if not Path(path).exists():
                raise FileNotFoundError(f"model.{key}: checkpoint not found: {path}")
            missing, unexpected = load_trained_weights(model, path, strict=False)
            logger.info("warm start from %s (model.%s): %d trainable tensors not in it, %d unused",
                        path, key, len(missing), len(unexpected))
        return model

    def build_datasets(self, cfg) -> Dict[str, Dict]:
        if not cfg.datasets:
            raise ValueError("the config has no datasets: add a datasets: section (e.g. datasets: {demo: {...}})")
        return {
            name: self.registry.get_builder_class(name)(ds_cfg, cfg).build()
            for name, ds_cfg in cfg.datasets.items()
        }

    def train_step(self, model, batch):
        """The batch's loss, or None when no sample is left in it. Samples dropped under
        ``run.on_bad_sample: skip`` are counted and logged; the runner neither logs nor averages a
        batch without samples, and keeps DDP ranks in step through it."""
        for reason in batch.get("skipped", ()):
            self.skipped_samples += 1
            logger.warning("skipped sample (run.on_bad_sample: skip), %d so far: %s", self.skipped_samples, reason)
        if not batch["names"]:
            return None
        return model(batch)["loss"]
