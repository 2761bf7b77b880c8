"""Where feature pre-extraction writes (SPEC 9), and the names the other modules share.

    {save_root}/{dataset}/frame_{VISUAL}_{n}frms/{name}.npy    [n, visual width]
    {save_root}/{dataset}/face_{VISUAL}_{n}frms/{name}.npy     [n, visual width]
    {save_root}/{dataset}/audio_{ACOUSTIC}_{c}clips/{name}.npy [c, acoustic width]
    {save_root}/{dataset}/au_CLIP_VITB32_8frms/{name}.npy      [N, 512] (one row per AU description)
    {save_root}/{dataset}/extraction_report.json

``{save_root}/{dataset}`` is what a dataset block's ``preextracted_root`` points at.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from my_affectgpt.datasets.au_source import AU_FEATURE_FOLDER

MODALITIES = ("frame", "face", "audio", "au")
VISUAL_MODALITIES = ("frame", "face")
REPORT_NAME = "extraction_report.json"


@dataclass(frozen=True)
class OutputLayout:
    dataset_dir: Path
    visual_encoder: str
    acoustic_encoder: str
    frame_n_frms: int
    clips_per_video: int

    def folder(self, modality: str) -> Path:
        names = {
            "frame": f"frame_{self.visual_encoder}_{self.frame_n_frms}frms",
            "face": f"face_{self.visual_encoder}_{self.frame_n_frms}frms",
            "audio": f"audio_{self.acoustic_encoder}_{self.clips_per_video}clips",
            "au": AU_FEATURE_FOLDER,
        }
        return Path(self.dataset_dir) / names[modality]

    def path(self, modality: str, name: str) -> Path:
        return self.folder(modality) / f"{name}.npy"

    def rows(self, modality: str) -> Optional[int]:
        """Rows every file of ``modality`` has (None: varies per sample)."""
        return {"frame": self.frame_n_frms, "face": self.frame_n_frms, "audio": self.clips_per_video}.get(modality)

    def report_path(self, shard_index: int = 0, shard_count: int = 1) -> Path:
        """The run's report; a shard of several writes its own beside the merged one."""
        if shard_count == 1:
            return Path(self.dataset_dir) / REPORT_NAME
        return Path(self.dataset_dir) / f"extraction_report.shard{shard_index}of{shard_count}.json"
