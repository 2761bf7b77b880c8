"""The contracts between the runner / inference and what they drive, as ``typing.Protocol``s.

A task (registered in the ``task`` bucket, named by ``run.task``) builds the model and the
datasets from the validated config and computes one training step's loss; the runner owns
everything else (loop, optimiser, schedule, checkpoints, logging). A model returns its loss
from ``forward`` and hands the runner only its trainable weights.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Protocol, runtime_checkable

import torch


@runtime_checkable
class TrainableModel(Protocol):
    def __call__(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """``{"loss": scalar tensor}`` for a batch."""

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """The weights a checkpoint holds (the trainable ones), by stable name."""

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Any:
        """Load weights written by ``trainable_state_dict``."""


@runtime_checkable
class GenerativeModel(TrainableModel, Protocol):
    def generate(self, batch: Mapping[str, Any], **gen_kwargs) -> list:
        """One answer string per sample of the batch."""


class Task(Protocol):
    def build_model(self, cfg) -> TrainableModel:
        """The model for ``cfg`` (a validated Config), warm-started from ``model.ckpt*``."""

    def build_datasets(self, cfg) -> Dict[str, Dict[str, Any]]:
        """``{dataset name: {split: dataset}}`` for the config's dataset blocks."""

    def train_step(self, model, batch: Mapping[str, Any]) -> Optional[torch.Tensor]:
        """The loss of one batch (the runner backpropagates it); None when the batch holds no
        sample (every one was skipped), which the runner neither logs nor averages."""
