"""Dataset builders, one registered name per dataset (LAVIS style)."""
from __future__ import annotations

from typing import Dict, Optional

from my_affectgpt.common.registry import registry
from my_affectgpt.datasets.base_dataset import BaseDataset
from my_affectgpt.datasets.mercaptionplus import DemoDataset, MERCaptionPlusDataset


class DatasetBuilder:
    """Builds the split named by the block's ``split`` key from ``dataset_cls``."""

    dataset_cls = BaseDataset

    def __init__(self, ds_cfg, cfg):
        self.ds_cfg = ds_cfg
        self.cfg = cfg

    def build(self, question: Optional[tuple] = None, au_realtime: bool = False) -> Dict[str, BaseDataset]:
        dataset = self.dataset_cls(
            self.ds_cfg,
            self.cfg.model,
            on_bad_sample=self.cfg.run.on_bad_sample,
            seed=self.cfg.run.seed,
            question=question,
            au_realtime=au_realtime,
        )
        return {self.ds_cfg.split: dataset}


@registry.register_builder("mercaptionplus")
class MERCaptionPlusBuilder(DatasetBuilder):
    dataset_cls = MERCaptionPlusDataset


@registry.register_builder("demo")
class DemoBuilder(DatasetBuilder):
    dataset_cls = DemoDataset
