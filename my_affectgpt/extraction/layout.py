"""Where feature pre-extraction writes: the feature layout of
``datasets.features`` under ``{save_root}/{dataset}`` (what a dataset block's
``preextracted_root`` points at), plus ``extraction_report.json``.
"""
from __future__ import annotations

from pathlib import Path

from my_affectgpt.datasets.features import FeatureLayout

MODALITIES = ("frame", "face", "audio", "au")
VISUAL_MODALITIES = ("frame", "face")
REPORT_NAME = "extraction_report.json"


class OutputLayout(FeatureLayout):
    """The feature layout under ``{save_root}/{dataset}``, plus the extraction report."""

    def report_path(self, shard_index: int = 0, shard_count: int = 1) -> Path:
        """The run's report; a shard of several writes its own beside the merged one."""
        if shard_count == 1:
            return Path(self.root) / REPORT_NAME
        return Path(self.root) / f"extraction_report.shard{shard_index}of{shard_count}.json"
