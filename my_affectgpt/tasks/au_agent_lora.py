"""LoRA fine-tuning of the AU Agent (``run.task: au_agent_lora``).

Same runner and registry as AffectGPT training: the model is ``model.arch: au_agent_lm``
(``models/au_agent.py``) and the data the ``au_agent_pairs`` builder
(``datasets/au_agent_pairs.py``); each step's loss is the model's next-token loss on the
description, with the prompt masked out.
"""
from __future__ import annotations

from my_affectgpt.common.errors import UserError
from my_affectgpt.common.registry import registry
from my_affectgpt.models.au_agent import AGENT_ARCH
from my_affectgpt.tasks.video_text_pretrain import VideoTextPretrainTask


@registry.register_task("au_agent_lora")
class AUAgentLoRATask(VideoTextPretrainTask):
    """Builds datasets and steps like ``video_text_pretrain``; only the model must be the AU Agent's."""

    def build_model(self, cfg):
        if cfg.model.arch != AGENT_ARCH:
            raise UserError(
                f"run.task au_agent_lora fine-tunes the AU Agent, but model.arch is {cfg.model.arch!r}; "
                f"set model.arch: {AGENT_ARCH}"
            )
        return super().build_model(cfg)
