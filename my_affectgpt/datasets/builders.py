"""Dataset builders, one registered name per dataset (LAVIS style)."""
from __future__ import annotations

from typing import Dict, Optional

from my_affectgpt.common.registry import registry
from my_affectgpt.datasets.base_dataset import BaseDataset
from my_affectgpt.datasets.mercaptionplus import DemoDataset, MERCaptionPlusDataset


class DatasetBuilder:
    """Builds the split named by the dataset block's ``split`` key from ``dataset_cls``."""

    dataset_cls = BaseDataset

    def __init__(self, cfg, name: str):
        """``cfg``: the validated Config; ``name``: the dataset block to build."""
        self.cfg = cfg
        self.name = name

    def build(self, question: Optional[tuple] = None) -> Dict[str, BaseDataset]:
        dataset = self.dataset_cls(self.cfg, self.name, question=question)
        return {self.cfg.datasets[self.name].split: dataset}


@registry.register_builder("mercaptionplus")
class MERCaptionPlusBuilder(DatasetBuilder):
    dataset_cls = MERCaptionPlusDataset


@registry.register_builder("demo")
class DemoBuilder(DatasetBuilder):
    dataset_cls = DemoDataset
